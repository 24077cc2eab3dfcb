package corfu_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Many async appends, to two streams and to none, share token requests and
// unit requests, and every one is at its own address, reads back, and is
// found by its stream's readers in order.
func TestAppendAsyncBatches(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	const n = 300
	futures := make([]*corfu.AppendFuture, n)
	for i := range n {
		var streams []corfu.StreamID
		if i%50 >= 40 {
			streams = []corfu.StreamID{corfu.StreamID(1 + i%2)}
		}
		f, err := e.c.AppendAsync(e.ctx, []byte(fmt.Sprintf("entry %d", i)), streams...)
		require.NoError(t, err)
		futures[i] = f
	}
	require.NoError(t, e.c.Flush(e.ctx))
	require.Zero(t, e.c.Pending())
	seen := map[storage.Address]int{}
	want := map[corfu.StreamID][]storage.Address{}
	for i, f := range futures {
		require.True(t, f.Done())
		a, err := f.Wait(e.ctx)
		require.NoError(t, err, "entry %d", i)
		_, dup := seen[a]
		require.False(t, dup, "entries %d and %d at address %d", seen[a], i, a)
		seen[a] = i
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("entry %d", i), string(got.Data))
		require.Equal(t, e.c.Writer(), got.Writer)
		if i%50 >= 40 {
			s := corfu.StreamID(1 + i%2)
			want[s] = append(want[s], a)
		}
	}
	tokens, batches := e.net.count(transport.OpToken), e.net.count(transport.OpWriteBatch)
	assert.Less(t, tokens, n/2, "token requests for %d appends", n)
	assert.Less(t, batches, n, "write-batch requests for %d appends (2 replicas each)", n)
	assert.Zero(t, e.net.count(transport.OpWrite), "single writes, with nothing failing")

	// Stream readers walk the backpointers the batches wrote.
	reader := e.open(nil)
	for s, addrs := range want {
		entries, err := reader.Stream(s, 0).Sync(e.ctx)
		require.NoError(t, err)
		var got []storage.Address
		for _, en := range entries {
			got = append(got, en.Address)
		}
		slices.Sort(addrs)
		require.Equal(t, addrs, got, "stream %d", s)
	}
}

// Two appends of the same bytes are two entries.
func TestAppendAsyncIdentity(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	f1, err := e.c.AppendAsync(e.ctx, []byte("same"))
	require.NoError(t, err)
	f2, err := e.c.AppendAsync(e.ctx, []byte("same"))
	require.NoError(t, err)
	a1, err := f1.Wait(e.ctx)
	require.NoError(t, err)
	a2, err := f2.Wait(e.ctx)
	require.NoError(t, err)
	require.NotEqual(t, a1, a2)
	r1, _ := e.c.Read(e.ctx, a1)
	r2, _ := e.c.Read(e.ctx, a2)
	require.NotEqual(t, r1.Seq, r2.Seq)
}

// The window bounds the appends in flight: TryAppendAsync fails fast and
// AppendAsync waits for room (or for its ctx).
func TestAppendAsyncWindow(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.Window = 2 })
	release := make(chan struct{})
	var held atomic.Int32
	e.net.setRule(func(_ transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWriteBatch || req.Op == transport.OpWrite {
			held.Add(1)
			<-release
		}
		return pass
	})
	f1, err := e.c.AppendAsync(e.ctx, []byte("a"))
	require.NoError(t, err)
	f2, err := e.c.AppendAsync(e.ctx, []byte("b"))
	require.NoError(t, err)
	require.Equal(t, 2, e.c.Pending())
	_, err = e.c.TryAppendAsync(e.ctx, []byte("c"))
	require.ErrorIs(t, err, corfu.ErrWindowFull)
	short, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
	defer cancel()
	_, err = e.c.AppendAsync(short, []byte("c"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	flushShort, cancel2 := context.WithTimeout(e.ctx, 10*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, e.c.Flush(flushShort), context.DeadlineExceeded)

	var f3 *corfu.AppendFuture
	var wg sync.WaitGroup
	wg.Go(func() {
		var err error
		f3, err = e.c.AppendAsync(e.ctx, []byte("c")) // waits for room
		assert.NoError(t, err)
	})
	require.Eventually(t, func() bool { return held.Load() > 0 }, time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.NoError(t, e.c.Flush(e.ctx))
	for _, f := range []*corfu.AppendFuture{f1, f2, f3} {
		_, err := f.Result()
		require.NoError(t, err)
	}
	require.Zero(t, e.c.Pending())
}

// A batch whose answer from the chain's tail is lost is completed by the
// slow path: the entry is acknowledged, at one address.
func TestAppendAsyncLostBatchReply(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	tail := e.chain(0)[1].id
	var lost atomic.Int32
	e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWriteBatch && to == tail && lost.Add(1) == 1 {
			return loseReply
		}
		return pass
	})
	var fs []*corfu.AppendFuture
	for i := range 5 {
		f, err := e.c.AppendAsync(e.ctx, []byte{byte(i)})
		require.NoError(t, err)
		fs = append(fs, f)
	}
	require.NoError(t, e.c.Flush(e.ctx))
	addrs := map[storage.Address]bool{}
	for i, f := range fs {
		a, err := f.Result()
		require.NoError(t, err)
		addrs[a] = true
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, got.Data)
	}
	require.Len(t, addrs, 5)
	tailAddr, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	require.Equal(t, storage.Address(5), tailAddr, "no entry took a second address")
	require.Positive(t, e.net.count(transport.OpWrite), "the slow path wrote the entries again")
}

// An entry whose address a filler took before the batch reached the head
// goes on at a fresh address; the others keep theirs.
func TestAppendAsyncLosesAddress(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	var once atomic.Bool
	e.net.setRule(func(_ transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWriteBatch && once.CompareAndSwap(false, true) {
			e.junk(1) // a reader gave up on address 1 and filled it
		}
		return pass
	})
	var fs []*corfu.AppendFuture
	for i := range 3 {
		f, err := e.c.AppendAsync(e.ctx, []byte{byte(i)})
		require.NoError(t, err)
		fs = append(fs, f)
	}
	require.NoError(t, e.c.Flush(e.ctx))
	var addrs []storage.Address
	for i, f := range fs {
		a, err := f.Result()
		require.NoError(t, err)
		require.NotEqual(t, storage.Address(1), a)
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, got.Data)
		addrs = append(addrs, a)
	}
	require.ElementsMatch(t, []storage.Address{0, 2, 3}, addrs)
	_, err := e.c.Read(e.ctx, 1)
	require.ErrorIs(t, err, corfu.ErrJunk)
}

// Bad arguments fail at once, with no future and nothing in flight.
func TestAppendAsyncArguments(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	_, err := e.c.AppendAsync(e.ctx, nil)
	require.ErrorIs(t, err, corfu.ErrNilData)
	_, err = e.c.AppendAsync(e.ctx, []byte("x"), 1, 1)
	require.ErrorIs(t, err, corfu.ErrInvalidStreams)
	require.Zero(t, e.c.Pending())
	require.NoError(t, e.c.Close())
	_, err = e.c.AppendAsync(e.ctx, []byte("x"))
	require.ErrorIs(t, err, corfu.ErrClosed)

	for _, tune := range []func(*corfu.Config){
		func(c *corfu.Config) { c.Window = -1 },
		func(c *corfu.Config) { c.MaxBatch = corfu.MaxBatch + 1 },
		func(c *corfu.Config) { c.MaxBatchBytes = storage.MaxEntryBytes + 1 },
	} {
		cfg := testConfig(e.cl.Config())
		tune(&cfg)
		_, err := corfu.Open(e.ctx, cfg)
		require.ErrorIs(t, err, corfu.ErrInvalidConfig)
	}
}

// A client on the system environment leaves no goroutine behind once its
// appends are done and it is closed: the goroutines that ran its batches
// end at Close, not a while later.
func TestCloseEndsBatchGoroutines(t *testing.T) {
	cl, err := corfutest.New(corfutest.Options{Units: 3, Replicas: 3})
	require.NoError(t, err)
	ctx := context.Background()
	before := runtime.NumGoroutine()
	c, err := corfu.Open(ctx, cl.Config())
	require.NoError(t, err)
	for range 200 {
		_, err := c.AppendAsync(ctx, []byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, c.Flush(ctx))
	require.NoError(t, c.Close())
	// NB: well inside the second an idle goroutine waits on its own.
	deadline := time.Now().Add(300 * time.Millisecond)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left after Close")
}
