package tango_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/kvmap"
	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// objs is a map, a counter and a queue on one runtime.
type objs struct {
	r *tango.Runtime
	m *tango.Map[string, int]
	n *tango.Counter
	q *tango.Queue[string]
}

func openObjs(t *testing.T, r *tango.Runtime) objs {
	return objs{
		r: r,
		m: must[*tango.Map[string, int]](t)(tango.NewMap[string, int](r, 1)),
		n: must[*tango.Counter](t)(tango.NewCounter(r, 2)),
		q: must[*tango.Queue[string]](t)(tango.NewQueue[string](r, 3)),
	}
}

// state returns what o holds, after syncing.
func (o objs) state(t *testing.T, ctx context.Context) string {
	t.Helper()
	keys, err := o.m.Keys(ctx)
	require.NoError(t, err)
	s := ""
	for _, k := range keys {
		v, _, err := o.m.Get(ctx, k)
		require.NoError(t, err)
		s += fmt.Sprintf("%s=%d ", k, v)
	}
	n, err := o.n.Get(ctx)
	require.NoError(t, err)
	items, err := o.q.Items(ctx)
	require.NoError(t, err)
	return fmt.Sprintf("%scount=%d queue=%v", s, n, items)
}

// fill makes updates and a transaction on o, numbered from i.
func (o objs) fill(t *testing.T, ctx context.Context, i int) {
	t.Helper()
	for j := range 5 {
		require.NoError(t, o.m.Put(ctx, fmt.Sprintf("k%d", (i+j)%4), i+j))
		require.NoError(t, o.n.Add(ctx, 1))
		require.NoError(t, o.q.Push(ctx, fmt.Sprintf("e%d", i+j)))
	}
	require.NoError(t, o.r.RunTx(ctx, func(ctx context.Context) error {
		v, _, err := o.m.Get(ctx, "k0")
		if err != nil {
			return err
		}
		if _, _, err := o.q.Pop(ctx); err != nil {
			return err
		}
		return o.n.Add(ctx, int64(v))
	}))
}

// TestCheckpointTrimRebuild: a runtime checkpoints its objects, the log is
// trimmed below the checkpoint, and a new client's runtime rebuilds the
// same objects from the checkpoint and the log after it, reading nothing
// below the mark; a runtime that lagged behind the trim reloads from the
// checkpoint by itself.
func TestCheckpointTrimRebuild(t *testing.T) {
	for _, chunk := range []int{0, 40} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			w := newWorld(t)
			a := openObjs(t, tango.New(w.client(), tango.Options{ChunkBytes: chunk}))
			lagging := openObjs(t, w.runtime())
			a.fill(t, w.ctx, 0)
			require.NoError(t, lagging.r.Sync(w.ctx))
			a.fill(t, w.ctx, 10)
			at, err := a.r.Checkpoint(w.ctx)
			require.NoError(t, err)
			a.fill(t, w.ctx, 20)
			mark, err := a.r.Trim(w.ctx)
			require.NoError(t, err)
			assert.Equal(t, at, mark, "trimmed below the checkpoint's position")
			a.fill(t, w.ctx, 30)
			want := a.state(t, w.ctx)

			var below atomic.Int64
			cfg := w.cluster.Config()
			cfg.Transport = countReads{cfg.Transport, mark, &below}
			fc, err := corfu.Open(w.ctx, cfg)
			require.NoError(t, err)
			fresh := openObjs(t, tango.New(fc, tango.Options{}))
			assert.Equal(t, want, fresh.state(t, w.ctx))
			assert.Zero(t, below.Load(), "the new replica read nothing below the mark")
			assert.Equal(t, want, lagging.state(t, w.ctx), "the lagging replica reloaded")

			// A replica that starts from the log's start (kvmap's way)
			// meets the trim and turns to the checkpoint.
			fromStart := openObjs(t, tango.New(w.client(), tango.Options{FromLogStart: true}))
			assert.Equal(t, want, fromStart.state(t, w.ctx))
		})
	}
}

// countReads counts the reads of addresses below mark. The in-process
// cluster's units hold addresses round-robin over 3 chains, so the global
// address of a local one is local*3 + stripe; a local address at or above
// mark/3+1 is surely at or above mark.
type countReads struct {
	inner transport.Caller
	mark  storage.Address
	n     *atomic.Int64
}

func (c countReads) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	if req.Op == transport.OpRead && req.Addr*3+2 < c.mark {
		c.n.Add(1)
	}
	return c.inner.Call(ctx, to, req)
}

// TestTrimNeedsCheckpoints: Trim refuses while a hosted object has no
// checkpoint; a replica whose updates were trimmed with no checkpoint to
// cover them fails with ErrTrimmed.
func TestTrimNeedsCheckpoints(t *testing.T) {
	w := newWorld(t)
	a := openObjs(t, w.runtime())
	a.fill(t, w.ctx, 0)
	_, err := a.r.Checkpoint(w.ctx, 1, 2) // not the queue
	require.NoError(t, err)
	_, err = a.r.Trim(w.ctx)
	require.ErrorIs(t, err, tango.ErrNoCheckpoint)
	_, err = a.r.Checkpoint(w.ctx, 99)
	require.ErrorIs(t, err, tango.ErrNotHosted)

	tail, err := a.r.Client().Tail(w.ctx)
	require.NoError(t, err)
	require.NoError(t, a.r.Client().PrefixTrim(w.ctx, tail)) // not through the runtime
	fresh := openObjs(t, w.runtime())
	_, err = fresh.q.Len(w.ctx)
	require.ErrorIs(t, err, corfu.ErrTrimmed)
}

// TestCheckpointRacesTrim: writers add to a counter and put their own keys
// while another client checkpoints and trims in a loop, and new replicas
// keep joining; every replica ends with every update. The mutant that
// trims below the checkpoints' records instead of their positions loses
// the updates made in between.
func TestCheckpointRacesTrim(t *testing.T) {
	w := newWorld(t)
	const writers, each = 3, 25
	var wg sync.WaitGroup
	stop := make(chan struct{})
	trimmer := openObjs(t, w.runtime())
	trims := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := trimmer.r.Checkpoint(w.ctx)
			assert.NoError(t, err)
			_, err = trimmer.r.Trim(w.ctx)
			assert.NoError(t, err)
			trims++
			joiner := openObjs(t, w.runtime())
			_, err = joiner.n.Get(w.ctx)
			assert.NoError(t, err, "a replica joining mid-trim")
		}
	}()
	var done sync.WaitGroup
	for i := range writers {
		o := openObjs(t, w.runtime())
		done.Add(1)
		go func() {
			defer done.Done()
			for j := range each {
				assert.NoError(t, o.n.Add(w.ctx, 1))
				assert.NoError(t, o.m.Put(w.ctx, fmt.Sprintf("w%d", i), j))
				if j%5 == 0 {
					_, err := o.n.Get(w.ctx) // a replica that syncs now and then
					assert.NoError(t, err)
				}
			}
		}()
	}
	done.Wait()
	close(stop)
	wg.Wait()
	assert.Positive(t, trims)
	for _, o := range []objs{openObjs(t, w.runtime()), trimmer} {
		n, err := o.n.Get(w.ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(writers*each), n)
		for i := range writers {
			v, _, err := o.m.Get(w.ctx, fmt.Sprintf("w%d", i))
			require.NoError(t, err)
			assert.Equal(t, each-1, v)
		}
	}
}

// TestTrimMutantLosesUpdates: an update lands between a checkpoint's
// position and its record (an append made as the record's token is asked
// for); the runtime's Trim keeps it, the mutant's trims it away, and a new
// replica can then not be built.
func TestTrimMutantLosesUpdates(t *testing.T) {
	for _, mutant := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutant=%v", mutant), func(t *testing.T) {
			w := newWorld(t)
			writer := openObjs(t, w.runtime())
			cfg := w.cluster.Config()
			var once sync.Once
			inner := cfg.Transport
			cfg.Transport = callerFunc(func(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
				if req.Op == transport.OpToken && req.N > 0 && slices.Contains(req.Streams, tango.CheckpointStream(1)) { // the first record
					once.Do(func() { require.NoError(t, writer.n.Add(w.ctx, 1)) })
				}
				return inner.Call(ctx, to, req)
			})
			c, err := corfu.Open(w.ctx, cfg)
			require.NoError(t, err)
			if mutant {
				defer tango.SetMutants(c.Env(), tango.Mutants{TrimAtCheckpointRecord: true})()
			}
			cp := openObjs(t, tango.New(c, tango.Options{}))
			require.NoError(t, writer.n.Add(w.ctx, 1))
			_, err = cp.r.Checkpoint(w.ctx)
			require.NoError(t, err)
			_, err = cp.r.Trim(w.ctx)
			require.NoError(t, err)
			n, err := openObjs(t, w.runtime()).n.Get(w.ctx)
			if mutant {
				// The update is gone: a new replica finds it trimmed above
				// every checkpoint, and says so.
				require.ErrorIs(t, err, corfu.ErrTrimmed, "the mutant lost the update")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, int64(2), n)
		})
	}
}

type callerFunc func(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error)

func (f callerFunc) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	return f(ctx, to, req)
}

// TestSnapshotAfterTrim: a snapshot below the trim fails with ErrTrimmed;
// one at or above the checkpoint is built from it.
func TestSnapshotAfterTrim(t *testing.T) {
	w := newWorld(t)
	a := openObjs(t, w.runtime())
	a.fill(t, w.ctx, 0)
	at, err := a.r.Checkpoint(w.ctx)
	require.NoError(t, err)
	a.fill(t, w.ctx, 10)
	_, err = a.r.Trim(w.ctx)
	require.NoError(t, err)
	err = a.r.ReadAt(w.ctx, at-1, func(context.Context) error { return nil })
	require.ErrorIs(t, err, corfu.ErrTrimmed)
	var n int64
	require.NoError(t, a.r.ReadAt(w.ctx, at, func(ctx context.Context) (err error) {
		n, err = a.n.Get(ctx)
		return err
	}))
	assert.Equal(t, int64(9), n, "the checkpoint's count: five adds and a transaction that added k0's 4")
}

// TestKVMapAfterTrim: after a checkpoint and a trim, a new kvmap replica
// is built from the checkpoint, and an old one goes on.
func TestKVMapAfterTrim(t *testing.T) {
	w := newWorld(t)
	const s corfu.StreamID = 7
	m := kvmap.New(w.client(), s)
	old := kvmap.New(w.client(), s)
	for i := range 10 {
		require.NoError(t, m.Put(w.ctx, fmt.Sprintf("k%d", i%3), fmt.Sprint(i)))
	}
	_, err := old.Len(w.ctx)
	require.NoError(t, err)
	_, err = m.Checkpoint(w.ctx)
	require.NoError(t, err)
	require.NoError(t, m.Put(w.ctx, "k0", "last"))
	_, err = m.Trim(w.ctx)
	require.NoError(t, err)
	for _, r := range []*kvmap.Map{kvmap.New(w.client(), s), old} {
		v, ok, err := r.Get(w.ctx, "k0")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, "last", v)
		n, err := r.Len(w.ctx)
		require.NoError(t, err)
		assert.Equal(t, 3, n)
	}
}
