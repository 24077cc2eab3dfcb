package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport/tcp"
)

// runMainEnv makes the test binary act as the corfu binary (TestMain), so
// that the tests start daemons as separate processes without a build step.
const runMainEnv = "CORFU_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// upTestCluster starts a local cluster of separate corfu serve processes
// (this test binary, acting as corfu) and stops it when the test ends.
func upTestCluster(t *testing.T, o upOptions) *localCluster {
	t.Helper()
	t.Setenv(runMainEnv, "1")
	exe, err := os.Executable()
	require.NoError(t, err)
	o.exe, o.dir = exe, t.TempDir()
	if o.stdout == nil {
		o.stdout = &bytes.Buffer{}
	}
	c, err := clusterUp(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := c.stop(20 * time.Second); err != nil {
			t.Logf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			for _, n := range c.cf.names() {
				b, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
				t.Logf("%s.log:\n%s", n, b)
			}
		}
	})
	return c
}

// openClient opens a library client on c over TCP.
func openClient(t *testing.T, c *localCluster) *corfu.Client {
	t.Helper()
	net, err := tcp.NewClient(tcp.ClientConfig{Resolve: c.cf.resolver()})
	require.NoError(t, err)
	var layout []projection.NodeID
	for _, n := range c.cf.Layout {
		layout = append(layout, projection.NodeID(n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := corfu.Open(ctx, corfu.Config{Layout: layout, Transport: net, Backpointers: c.cf.backpointers()})
	if err != nil {
		net.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestClusterOfProcesses runs 5 daemons as separate processes on loopback
// ports (a layout server, the sequencer, two units in one chain and a
// spare), with concurrent appenders and a reader. Midway a unit is killed
// with SIGKILL and restarted on its data directory. The clients carry on,
// and every acknowledged append is readable afterwards with its bytes.
func TestClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := upTestCluster(t, upOptions{layouts: 1, units: 2, replicas: 2, spares: 1, sync: "batch"})
	require.Len(t, c.procs, 5)

	const writers, perWriter = 4, 60
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	acked := map[storage.Address]string{}
	var wg sync.WaitGroup
	progress := make(chan struct{}, writers*perWriter)
	for w := range writers {
		cl := openClient(t, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter && ctx.Err() == nil; {
				data := fmt.Sprintf("w%d-%d", w, i)
				actx, acancel := context.WithTimeout(ctx, 5*time.Second)
				addr, err := cl.Append(actx, []byte(data))
				acancel()
				if err != nil {
					// NB: during the outage appends fail (fast, with
					// corfu.ErrUnavailable, while the unit's port is
					// closed) or time out; the writer tries again.
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[addr] = data
				mu.Unlock()
				progress <- struct{}{}
				i++
			}
		}()
	}
	reader := openClient(t, c)
	readErrs := make(chan error, 1)
	stopReading := make(chan struct{})
	go func() {
		var next storage.Address
		for {
			select {
			case <-stopReading:
				readErrs <- nil
				return
			default:
			}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			e, err := reader.Read(rctx, next)
			rcancel()
			switch {
			case err == nil, errors.Is(err, corfu.ErrJunk):
				mu.Lock()
				want, ok := acked[next]
				mu.Unlock()
				if err == nil && ok && string(e.Data) != want {
					readErrs <- fmt.Errorf("address %d: read %q, appended %q", next, e.Data, want)
					return
				}
				next++
			default:
				time.Sleep(10 * time.Millisecond) // at the tail, or during the outage
			}
		}
	}()

	for range 40 {
		<-progress
	}
	unit := "unit1"
	require.NoError(t, c.procs[unit].Process.Kill(), "SIGKILL")
	c.procs[unit].Wait() //nolint:errcheck // NB: killed
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	beforeRestart := len(acked)
	mu.Unlock()
	require.NoError(t, c.start(unit), "restart on its data directory")
	require.NoError(t, c.waitUp(ctx, 20*time.Second))
	wg.Wait()
	close(stopReading)
	require.NoError(t, <-readErrs)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d appends acknowledged, %d of them after the restart", len(acked), len(acked)-beforeRestart)
	require.Greater(t, len(acked), beforeRestart, "the writers carried on after the restart")
	readsBack(ctx, t, c, acked)
}

// TestCLIAgainstCluster drives the client verbs as a user would, against a
// cluster of processes: append, read, a range, tail, a stream, layout show,
// status and a reconfiguration replacing a unit with the spare.
func TestCLIAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := upTestCluster(t, upOptions{layouts: 3, units: 2, replicas: 2, spares: 1, sync: "batch"})
	cli := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		status := run(append(args, "--cluster", c.file), &out, &errOut)
		if status != 0 {
			t.Logf("corfu %v: %s", args, errOut.String())
		}
		return out.String(), status
	}
	out, status := cli("append", "hello", "world")
	require.Equal(t, 0, status)
	require.Equal(t, "0\n1\n", out)
	out, status = cli("append", "--stream", "7", "--json", "s1")
	require.Equal(t, 0, status)
	require.Equal(t, `{"address":2}`+"\n", out)
	out, _ = cli("read", "1")
	require.Equal(t, "1\tworld\n", out)
	out, _ = cli("read", "0..3")
	require.Equal(t, "0\thello\n1\tworld\n2\ts1\n", out)
	out, _ = cli("tail")
	require.Equal(t, "3\n", out)
	out, _ = cli("stream", "read", "7")
	require.Equal(t, "2\ts1\n", out)
	out, status = cli("status")
	require.Equal(t, 0, status, out)
	require.Equal(t, 7, strings.Count(out, "healthy=true"), out)
	out, status = cli("reconfigure", "--replace", "unit1=spare0")
	require.Equal(t, 0, status)
	require.Equal(t, "epoch 1\n", out)
	out, _ = cli("layout", "show")
	require.Contains(t, out, "spare0")
	out, status = cli("append", "after")
	require.Equal(t, 0, status)
	require.Equal(t, "3\n", out)
	out, _ = cli("read", "0..4")
	require.Equal(t, "0\thello\n1\tworld\n2\ts1\n3\tafter\n", out)
	_, status = cli("read", "not-an-address")
	require.Equal(t, 2, status, "bad input is a usage error")

	// A follower of stream 7 prints what it finds, then what is appended
	// to the stream while it waits, and stops cleanly on an interrupt.
	exe, err := os.Executable()
	require.NoError(t, err)
	follow := exec.Command(exe, "stream", "follow", "7", "--cluster", c.file) // NB: acts as corfu (runMainEnv)
	stdout, err := follow.StdoutPipe()
	require.NoError(t, err)
	var followErr bytes.Buffer
	follow.Stderr = &followErr
	require.NoError(t, follow.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(20 * time.Second):
			_ = follow.Process.Kill()
			t.Fatalf("the follower printed nothing; stderr: %s", followErr.String())
			return ""
		}
	}
	require.Equal(t, "2\ts1", next())
	out, status = cli("append", "--stream", "7", "s2")
	require.Equal(t, 0, status)
	require.Equal(t, "4\n", out)
	require.Equal(t, "4\ts2", next())
	require.NoError(t, follow.Process.Signal(os.Interrupt))
	for range lines {
	}
	require.NoError(t, follow.Wait(), "stderr: %s", followErr.String())
}

// TestClusterHealsItself: a cluster of processes whose layout servers run
// failure detectors (corfu serve --heal). A unit is killed and stays dead;
// nobody reconfigures by hand. The spare takes its place, appends succeed
// again, the closed chain is rebuilt to two replicas, and every
// acknowledged append reads back.
func TestClusterHealsItself(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := upTestCluster(t, upOptions{layouts: 3, units: 2, replicas: 2, spares: 1, sync: "batch", heal: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := openClient(t, c)
	acked := map[storage.Address]string{}
	for i := range 20 {
		data := fmt.Sprintf("before-%d", i)
		a, err := cl.Append(ctx, []byte(data))
		require.NoError(t, err)
		acked[a] = data
	}
	require.NoError(t, c.procs["unit1"].Process.Kill(), "SIGKILL")
	c.procs["unit1"].Wait() //nolint:errcheck // NB: killed, and left dead
	delete(c.procs, "unit1")
	// NB: appends fail (or wait) until a detector has replaced unit1; then
	// they succeed again without anyone's help.
	var after int
	for after < 20 && ctx.Err() == nil {
		data := fmt.Sprintf("after-%d", after)
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		a, err := cl.Append(actx, []byte(data))
		acancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		acked[a] = data
		after++
	}
	require.Equal(t, 20, after, "appends after the kill")
	var p *projection.Projection
	for ctx.Err() == nil {
		p = cl.Projection()
		full := !slices.Contains(p.Units(), "unit1")
		for _, seg := range p.Segments {
			for _, chain := range seg.Stripes {
				full = full && len(chain) == 2
			}
		}
		if full {
			break
		}
		time.Sleep(50 * time.Millisecond)
		_, _ = cl.Tail(ctx) // NB: refreshes the projection once a newer epoch seals what it asks
	}
	require.NoError(t, ctx.Err(), "the chains were never whole again: %+v", p)
	require.Contains(t, p.Units(), projection.NodeID("spare0"))
	t.Logf("healed by itself: epoch %d, segments %v", p.Epoch, p.Segments)
	readsBack(ctx, t, c, acked)
}

// readsBack checks, with a new client of c, that every acknowledged append
// of acked reads back at its address.
func readsBack(ctx context.Context, t *testing.T, c *localCluster, acked map[storage.Address]string) {
	t.Helper()
	check := openClient(t, c)
	for addr, want := range acked {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		e, err := check.Read(rctx, addr)
		rcancel()
		require.NoError(t, err, "address %d", addr)
		require.Equal(t, want, string(e.Data), "address %d", addr)
	}
}
