package disk_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
)

// crashChildEnv names the directory a re-executed test binary writes to as
// the crash test's child.
const crashChildEnv = "CORFU_DISK_CRASH_CHILD"

var crashOptions = disk.Options{Node: "crash", ID: disk.ID{7}, SegmentBytes: 256 << 10}

// crashPayload is what the crash test writes at addr: its length and
// contents depend on addr alone, so the parent can check any entry.
func crashPayload(addr storage.Address) []byte {
	n := 64 + int(addr*37%900)
	b := bytes.Repeat(fmt.Appendf(nil, "<%d>", addr), n/3+1)
	return b[:n]
}

// TestCrashKill runs a child process that writes under load (SyncBatch,
// 16 writers, a sealer raising the epoch now and then) and prints each
// acknowledged address and seal; it kills the child with SIGKILL at a
// random moment, reopens the directory, and checks that every acknowledged
// entry is there and intact and that the sealed epoch never went back. It
// does so for 20 rounds on one directory.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("kills 20 child processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	acked := map[storage.Address]bool{}
	var lastEpoch storage.Epoch
	for round := range 20 {
		addrs, sealed := runCrashChild(t, dir, time.Duration(20+rng.IntN(250))*time.Millisecond)
		for _, a := range addrs {
			acked[a] = true
		}
		epoch := checkAfterCrash(t, dir, acked)
		require.GreaterOrEqual(t, epoch, sealed, "round %d: a seal the child acknowledged was lost", round)
		require.GreaterOrEqual(t, epoch, lastEpoch, "round %d: the sealed epoch went back", round)
		lastEpoch = epoch
		t.Logf("round %d: %d writes and seals up to epoch %d acknowledged before the kill; %d checked in all; epoch %d",
			round, len(addrs), sealed, len(acked), epoch)
	}
	require.NotEmpty(t, acked, "the children acknowledged nothing")
}

// runCrashChild starts the child on dir, kills it after it has run for
// about d, and returns what it acknowledged: addresses, and the highest
// epoch it sealed at.
func runCrashChild(t *testing.T, dir string, d time.Duration) ([]storage.Address, storage.Epoch) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	var addrs []storage.Address
	var sealed storage.Epoch
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n uint64
			switch line := sc.Text(); {
			case line == "ready":
				close(ready)
			case strings.HasPrefix(line, "W "):
				if _, err := fmt.Sscan(line[2:], &n); err == nil {
					addrs = append(addrs, storage.Address(n))
				}
			case strings.HasPrefix(line, "S "):
				if _, err := fmt.Sscan(line[2:], &n); err == nil {
					sealed = max(sealed, storage.Epoch(n))
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-done:
		_ = cmd.Wait()
		t.Fatal("the child exited before it was ready")
	}
	time.Sleep(d)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-done
	err = cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child ended on its own: %v", err)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child ended on its own: %v", err)
	return addrs, sealed
}

// checkAfterCrash reopens dir and checks every acknowledged entry; it
// returns the unit's epoch.
func checkAfterCrash(t *testing.T, dir string, acked map[storage.Address]bool) storage.Epoch {
	t.Helper()
	u, err := disk.Open(vfs.Default, dir, crashOptions)
	require.NoError(t, err)
	defer u.Close()
	epoch := u.Epoch()
	for a := range acked {
		got, err := u.Read(ctx, epoch, a)
		require.NoError(t, err, "acknowledged address %d", a)
		require.Equal(t, crashPayload(a), got, "acknowledged address %d", a)
	}
	return epoch
}

// crashChild is the child: it writes from the unit's tail on, with 16
// writers, and seals at a higher epoch every 25 writes or so, printing each
// acknowledgement, until it is killed (or 20 seconds pass).
func crashChild(dir string) {
	u, err := disk.Open(vfs.Default, dir, crashOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: one write per line
	}
	var epoch atomic.Uint64
	epoch.Store(uint64(u.Epoch()))
	var next atomic.Uint64
	next.Store(uint64(u.Tail()))
	say("ready")
	deadline := time.After(20 * time.Second)
	for range 16 {
		go func() {
			for {
				a := storage.Address(next.Add(1) - 1)
				for {
					err := u.Write(ctx, storage.Epoch(epoch.Load()), a, crashPayload(a))
					if err == nil {
						say("W %d", a)
						break
					}
					if !errors.Is(err, storage.ErrSealed) && !errors.Is(err, storage.ErrFutureEpoch) {
						fmt.Fprintln(os.Stderr, "child write:", err)
						os.Exit(3)
					}
				}
				if a%25 == 0 {
					e := storage.Epoch(epoch.Load()) + 1
					if _, err := u.Seal(ctx, e); err == nil {
						say("S %d", e)
						for cur := epoch.Load(); cur < uint64(e) && !epoch.CompareAndSwap(cur, uint64(e)); cur = epoch.Load() {
						}
					}
				}
			}
		}()
	}
	<-deadline
	os.Exit(0)
}

// TestPowerLossUnderLoad cuts the power (MemFS.CrashClone, with torn tails,
// contiguous or in scattered 512-byte blocks) at random moments while 16
// writers and a sealer run, half the time with segments written ahead, and
// checks that every write and seal acknowledged before the cut survives it.
func TestPowerLossUnderLoad(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		m := vfs.NewMem()
		opts := crashOptions
		opts.SegmentBytes = 16 << 10
		if round%4 >= 2 { // half the rounds write segments ahead
			opts.Prewrite = disk.PrewriteOn
		}
		u, err := disk.Open(m, dir, opts)
		require.NoError(t, err)
		var acked sync.Map
		var sealed, epoch atomic.Uint64
		var next atomic.Uint64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					a := storage.Address(next.Add(1) - 1)
					err := u.Write(ctx, storage.Epoch(epoch.Load()), a, crashPayload(a))
					switch {
					case err == nil:
						acked.Store(a, true)
					case errors.Is(err, storage.ErrSealed), errors.Is(err, storage.ErrFutureEpoch):
					default:
						t.Error(err)
						return
					}
					if a%50 == 0 {
						e := storage.Epoch(epoch.Load()) + 1
						if _, err := u.Seal(ctx, e); err == nil {
							for cur := sealed.Load(); cur < uint64(e) && !sealed.CompareAndSwap(cur, uint64(e)); cur = sealed.Load() {
							}
							for cur := epoch.Load(); cur < uint64(e) && !epoch.CompareAndSwap(cur, uint64(e)); cur = epoch.Load() {
							}
						}
					}
				}
			})
		}
		rng := randFor(uint64(round))
		for next.Load() < uint64(100+rng.IntN(2000)) {
			time.Sleep(100 * time.Microsecond)
		}
		// What was acknowledged before the cut must survive it.
		var before []storage.Address
		acked.Range(func(k, _ any) bool { before = append(before, k.(storage.Address)); return true })
		sealedBefore := storage.Epoch(sealed.Load())
		// Odd rounds lose unsynced blocks out of order, not just a tail.
		c := m.CrashClone(vfs.CrashOptions{Rand: rng, BlockSize: 512 * (round % 2)})
		close(stop)
		wg.Wait()
		require.NoError(t, u.Close())

		r, err := disk.Open(c, dir, opts)
		require.NoError(t, err, "round %d", round)
		require.GreaterOrEqual(t, r.Epoch(), sealedBefore, "round %d: an acknowledged seal was lost", round)
		for _, a := range before {
			got, err := r.Read(ctx, r.Epoch(), a)
			require.NoError(t, err, "round %d: acknowledged address %d", round, a)
			require.Equal(t, crashPayload(a), got, "round %d: acknowledged address %d", round, a)
		}
		require.NoError(t, r.Close())
	}
}
