package disk_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
)

// faultRun drives a unit through random writes, fills, trims and seals on
// a MemFS beneath an errorfs.FS that injects faults, restarting it after a
// power loss whenever it fails, and returns what it acknowledged.
type faultRun struct {
	t     *testing.T
	seed  uint64
	lying bool // also misdirected and torn writes, which report success
	mem   *vfs.MemFS
	fsys  *errorfs.FS
	u     *disk.Unit
	acked map[storage.Address][]byte
	// writes whose outcome is unknown: more than one per address if the
	// first was lost to a power loss and a later one failed too
	maybe map[storage.Address][][]byte
	other map[storage.Address]bool // filled or trimmed, acknowledged
	// trims whose outcome is unknown: the record of a trim that failed may
	// still survive the power loss (a torn tail keeps it whole)
	maybeTrimmed map[storage.Address]bool
	counts       struct{ restarts, refusals, errors int }
	epoch        storage.Epoch
	opened       bool
}

func (r *faultRun) injector() errorfs.Injector {
	rng := randFor(r.seed + 1000)
	injs := []errorfs.Injector{
		errorfs.WithProbability(rng, 0.01, errorfs.Ops(errorfs.OpWrite, errorfs.OpSync), errorfs.Fault{Kind: errorfs.Error}),
		errorfs.WithProbability(rng, 0.005, errorfs.Ops(errorfs.OpWrite, errorfs.OpCreate), errorfs.Fault{Kind: errorfs.NoSpace}),
		errorfs.WithProbability(rng, 0.05, errorfs.PathContains(".seg", errorfs.OpRead), errorfs.Fault{Kind: errorfs.Corrupt, Bit: int(rng.Uint32())}),
	}
	if r.lying {
		injs = append(injs,
			errorfs.WithProbability(rng, 0.01, errorfs.PathContains(".seg", errorfs.OpWrite), errorfs.Fault{Kind: errorfs.Misdirect, Shift: -100}),
			errorfs.WithProbability(rng, 0.01, errorfs.PathContains(".seg", errorfs.OpWrite), errorfs.Fault{Kind: errorfs.Torn, Keep: 30}))
	}
	return errorfs.Any(injs...)
}

// restart cuts the power and opens the unit again, with faults off while
// it recovers. It reports whether the unit opened (a lying disk may leave
// it refusing, which is allowed).
func (r *faultRun) restart() bool {
	if r.u != nil {
		_ = r.u.Close()
	}
	r.mem = r.mem.CrashClone(vfs.CrashOptions{Rand: randFor(r.seed)})
	r.fsys = errorfs.Wrap(r.mem, nil, errorfs.Options{})
	opts := testOptions()
	opts.SegmentBytes = 2 << 10
	if r.seed%2 == 1 {
		opts.Prewrite = disk.PrewriteOn
	}
	u, err := disk.Open(r.fsys, dir, opts)
	r.counts.restarts++
	if err != nil {
		require.True(r.t, r.lying, "seed %d: an honest disk's unit refused to open: %v", r.seed, err)
		require.ErrorIs(r.t, err, storage.ErrCorrupt, "seed %d: refused for another reason", r.seed)
		r.counts.refusals++
		return false
	}
	r.u, r.epoch = u, u.Epoch()
	r.fsys.SetInjector(r.injector())
	return true
}

func (r *faultRun) step(i int) bool {
	rng := randFor(r.seed*7919 + uint64(i))
	a := storage.Address(rng.IntN(300))
	var err error
	switch op := rng.IntN(10); {
	case op < 6:
		p := fmt.Appendf(nil, "%d/%d/%s", a, i, bytes.Repeat([]byte{'x'}, rng.IntN(200)))
		switch err = r.u.Write(ctx, r.epoch, a, p); {
		case err == nil:
			r.acked[a] = p
		case errors.Is(err, disk.ErrFailed) || errors.Is(err, errorfs.ErrInjected):
			r.maybe[a] = append(r.maybe[a], p)
		}
	case op < 7:
		if err = r.u.Fill(ctx, r.epoch, a); err == nil {
			r.other[a] = true
		}
	case op < 8:
		switch err = r.u.Trim(ctx, r.epoch, a); {
		case err == nil:
			if p, ok := r.acked[a]; ok && r.lying {
				// NB: a lying disk may lose the trim's record: the entry
				// acknowledged there may come back.
				r.maybe[a] = append(r.maybe[a], p)
			}
			delete(r.acked, a)
			r.other[a] = true
		case errors.Is(err, disk.ErrFailed) || errors.Is(err, errorfs.ErrInjected):
			r.maybeTrimmed[a] = true
		}
	case op < 9:
		if _, err = r.u.Seal(ctx, r.epoch+1); err == nil {
			r.epoch++
		}
	default:
		var got []byte
		got, err = r.u.Read(ctx, r.epoch, a)
		if err == nil {
			r.check(a, got)
		}
	}
	if err != nil {
		r.counts.errors++
	}
	if errors.Is(err, disk.ErrFailed) || errors.Is(err, errorfs.ErrInjected) {
		return r.restart()
	}
	return true
}

// check fails the test unless got is what was written at a, acknowledged
// or with its outcome unknown.
func (r *faultRun) check(a storage.Address, got []byte) {
	if want, ok := r.acked[a]; ok && bytes.Equal(got, want) {
		return
	}
	for _, want := range r.maybe[a] {
		if bytes.Equal(got, want) {
			return
		}
	}
	r.t.Fatalf("seed %d: address %d served %q, which was never written there", r.seed, a, got)
}

// verify reopens without faults: every acknowledged entry reads back intact
// (an honest disk) or at least nothing else is served (a lying one).
func (r *faultRun) verify() {
	if !r.restart() {
		return
	}
	r.fsys.SetInjector(nil)
	for a := range storage.Address(300) {
		got, err := r.u.Read(ctx, r.u.Epoch(), a)
		want, ok := r.acked[a]
		switch {
		case err == nil:
			r.check(a, got)
			if ok && !r.lying {
				require.Equal(r.t, want, got, "seed %d: address %d", r.seed, a)
			}
		case ok && !r.lying && !(r.maybeTrimmed[a] && errors.Is(err, storage.ErrTrimmed)):
			r.t.Fatalf("seed %d: acknowledged address %d lost on an honest disk: %v", r.seed, a, err)
		}
	}
	_ = r.u.Close()
}

// TestFaultsNeverServeWrongBytes runs the unit over a disk that fails
// writes and syncs, fills up and corrupts reads (honest faults: every
// acknowledged entry must survive), and over one that also misdirects and
// tears writes while reporting success (a lying disk: entries may be lost,
// but no read ever returns bytes that were not acknowledged at its address).
func TestFaultsNeverServeWrongBytes(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for _, lying := range []bool{false, true} {
		var restarts, refusals, errs int
		for seed := range uint64(seeds) {
			r := &faultRun{t: t, seed: seed, lying: lying, mem: vfs.NewMem(), acked: map[storage.Address][]byte{},
				maybe: map[storage.Address][][]byte{}, other: map[storage.Address]bool{}, maybeTrimmed: map[storage.Address]bool{}}
			if r.restart() {
				for i := range 1500 {
					if !r.step(i) {
						break
					}
				}
				r.verify()
			}
			restarts, refusals, errs = restarts+r.counts.restarts, refusals+r.counts.refusals, errs+r.counts.errors
		}
		t.Logf("lying=%v: %d seeds, %d restarts, %d refused opens, %d calls answered an error", lying, seeds, restarts, refusals, errs)
		require.Positive(t, restarts-2*seeds, "lying=%v: no fault ever failed the unit", lying)
	}
}
