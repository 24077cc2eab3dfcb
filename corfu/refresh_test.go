package corfu_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// TestRefreshIsSingleFlight: clients' calls that all find their projection
// stale share one fetch from the layout servers. The fetch is held until
// every reader has met the seal; with one fetch in flight, the count of
// fetches is 1 whatever the timing.
func TestRefreshIsSingleFlight(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	a, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	_, err = e.open(nil).Reconfigure(e.ctx, nil) // e.c's projection is stale now
	require.NoError(t, err)
	gets := e.net.count(transport.OpGetLayout)
	release := make(chan struct{})
	e.net.setRule(func(_ transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpGetLayout {
			<-release
		}
		return pass
	})
	const readers = 8
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.c.Read(e.ctx, a)
		}()
	}
	require.Eventually(t, func() bool { return e.net.count(transport.OpGetLayout) > gets }, testTimeout, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // NB: gives the other readers time to ask too, if they would
	require.Equal(t, gets+1, e.net.count(transport.OpGetLayout), "a second fetch while one was in flight")
	close(release)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, storage.Epoch(1), e.c.Epoch())
}

// TestBackpointersFromProjection: a client configured with another K than
// the projection's writes and reads with the projection's.
func TestBackpointersFromProjection(t *testing.T) {
	e := newEnv(t, corfutest.Options{Backpointers: 3}, func(c *corfu.Config) { c.Backpointers = 1 })
	require.Equal(t, 3, e.c.Projection().Backpointers)
	var last storage.Address
	for i := range 5 {
		a, err := e.c.Append(e.ctx, []byte{byte(i)}, 7)
		require.NoError(t, err)
		last = a
	}
	got, err := e.c.Read(e.ctx, last)
	require.NoError(t, err)
	require.Len(t, got.Backpointers[0], 3, "the projection's K, not the client's 1")
	es, err := e.c.Stream(7, 0).Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, es, 5)
}

// TestAppendFailsFastOnDeadHead: a chain head the transport cannot reach at
// all (transport.ErrNotSent) makes an append fail with ErrUnavailable,
// having stored nothing (no ErrUnknownOutcome, no retries until they run
// out); once a reconfiguration replaces the head, appends succeed again.
func TestAppendFailsFastOnDeadHead(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Spares: 1}, nil)
	_, err := e.c.Append(e.ctx, []byte("before"))
	require.NoError(t, err)
	e.crashUnit("unit0") // the chain's head
	writes := e.net.count(transport.OpWrite)
	_, err = e.c.Append(e.ctx, []byte("during"))
	require.ErrorIs(t, err, corfu.ErrUnavailable)
	require.NotErrorIs(t, err, corfu.ErrUnknownOutcome)
	require.LessOrEqual(t, e.net.count(transport.OpWrite)-writes, 2, "two attempts at the head, not the whole retry budget")
	_, err = e.open(nil).Reconfigure(e.ctx, corfu.ReplaceUnit("unit0", "spare0"))
	require.NoError(t, err)
	a, err := e.c.Append(e.ctx, []byte("after"))
	require.NoError(t, err)
	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	require.Equal(t, "after", string(got.Data))
}
