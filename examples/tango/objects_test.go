package tango_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/examples/tango"
)

// TestObjectsConverge: two runtimes on two clients host the same objects;
// each one's updates are visible to the other's next query, and both hold
// the same views after concurrent updates.
func TestObjectsConverge(t *testing.T) {
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", json), func(t *testing.T) {
			w := newWorld(t)
			var opts []tango.Option
			if json {
				opts = append(opts, tango.WithJSON())
			}
			type replica struct {
				m *tango.Map[string, int]
				c *tango.Counter
				g *tango.Register[string]
				q *tango.Queue[int]
			}
			open := func() replica {
				r := w.runtime()
				return replica{
					m: must[*tango.Map[string, int]](t)(tango.NewMap[string, int](r, 1, opts...)),
					c: must[*tango.Counter](t)(tango.NewCounter(r, 2, opts...)),
					g: must[*tango.Register[string]](t)(tango.NewRegister[string](r, 3, opts...)),
					q: must[*tango.Queue[int]](t)(tango.NewQueue[int](r, 4, opts...)),
				}
			}
			a, b := open(), open()
			ctx := w.ctx
			require.NoError(t, a.m.Put(ctx, "x", 1))
			v, ok, err := b.m.Get(ctx, "x")
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, 1, v)

			var wg sync.WaitGroup
			for i, rep := range []replica{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range 10 {
						assert.NoError(t, rep.m.Put(ctx, fmt.Sprintf("k%d", j%3), i*100+j))
						assert.NoError(t, rep.c.Add(ctx, int64(i+1)))
						assert.NoError(t, rep.g.Set(ctx, fmt.Sprintf("r%d-%d", i, j)))
						assert.NoError(t, rep.q.Push(ctx, i*100+j))
					}
				}()
			}
			wg.Wait()
			require.NoError(t, a.m.Delete(ctx, "x"))
			for _, rep := range []replica{a, b} {
				n, err := rep.c.Get(ctx)
				require.NoError(t, err)
				assert.Equal(t, int64(30), n)
			}
			ka, err := a.m.Keys(ctx)
			require.NoError(t, err)
			kb, err := b.m.Keys(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{"k0", "k1", "k2"}, ka)
			assert.Equal(t, ka, kb)
			for _, k := range ka {
				va, _, _ := a.m.Get(ctx, k)
				vb, _, _ := b.m.Get(ctx, k)
				assert.Equal(t, va, vb, "key %s", k)
			}
			ga, _ := a.g.Get(ctx)
			gb, _ := b.g.Get(ctx)
			assert.Equal(t, ga, gb)
			qa, _ := a.q.Items(ctx)
			qb, _ := b.q.Items(ctx)
			assert.Equal(t, qa, qb)
			assert.Len(t, qa, 20)
		})
	}
}

// TestStaleRead: a stale read does not sync, so it misses an update made
// on another client until something syncs.
func TestStaleRead(t *testing.T) {
	w := newWorld(t)
	a := must[*tango.Map[string, string]](t)(tango.NewMap[string, string](w.runtime(), 1))
	b := must[*tango.Map[string, string]](t)(tango.NewMap[string, string](w.runtime(), 1))
	require.NoError(t, a.Put(w.ctx, "k", "v"))
	_, ok := b.StaleGet("k")
	assert.False(t, ok, "a stale read does not sync")
	v, ok, err := b.Get(w.ctx, "k")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "v", v)
	v, ok = b.StaleGet("k")
	assert.True(t, ok)
	assert.Equal(t, "v", v)
}

// TestQueuePop: clients popping one queue at once each get a different
// element, and together every element once.
func TestQueuePop(t *testing.T) {
	w := newWorld(t)
	q := must[*tango.Queue[int]](t)(tango.NewQueue[int](w.runtime(), 9))
	for i := range 30 {
		require.NoError(t, q.Push(w.ctx, i))
	}
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for range 3 {
		p := must[*tango.Queue[int]](t)(tango.NewQueue[int](w.runtime(), 9))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, ok, err := p.Pop(w.ctx)
				if !assert.NoError(t, err) || !ok {
					return
				}
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(got)
	want := make([]int, 30)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, got)
	n, err := q.Len(w.ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestRegisterErrors: a spec without Apply, an ID out of range and an ID
// hosted twice are refused.
func TestRegisterErrors(t *testing.T) {
	w := newWorld(t)
	r := w.runtime()
	_, err := tango.NewObject(r, tango.Spec[int, int]{ID: 1})
	assert.ErrorIs(t, err, tango.ErrInvalidSpec)
	_, err = tango.NewObject(r, tango.Spec[int, int]{ID: 0, Apply: func(*int, int) {}})
	assert.ErrorIs(t, err, tango.ErrInvalidSpec)
	_, err = tango.NewObject(r, tango.Spec[int, int]{ID: tango.MaxObjectID + 1, Apply: func(*int, int) {}})
	assert.ErrorIs(t, err, tango.ErrInvalidSpec)
	_, err = tango.NewCounter(r, 5)
	require.NoError(t, err)
	_, err = tango.NewCounter(r, 5)
	assert.ErrorIs(t, err, tango.ErrInvalidSpec)
}

// TestCorruptEntry: an entry on an object's stream that does not decode is
// reported once, by the sync that meets it, and stepped over.
func TestCorruptEntry(t *testing.T) {
	w := newWorld(t)
	r := w.runtime()
	c := must[*tango.Counter](t)(tango.NewCounter(r, 3))
	require.NoError(t, c.Add(w.ctx, 2))
	bad, err := r.Client().Append(w.ctx, []byte{0xff, 0xff, 0xff}, 3) // a varint that never ends
	require.NoError(t, err)
	require.NoError(t, c.Add(w.ctx, 3))
	_, err = c.Get(w.ctx)
	var ce *tango.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, bad, ce.Addr)
	assert.Equal(t, tango.ObjectID(3), ce.Object)
	n, err := c.Get(w.ctx)
	require.NoError(t, err, "reported once")
	assert.Equal(t, int64(5), n)
}

// TestMultiStreamObject: an object that also reads other objects' streams
// applies their updates in log order with its own.
func TestMultiStreamObject(t *testing.T) {
	w := newWorld(t)
	r := w.runtime()
	a := must[*tango.Counter](t)(tango.NewCounter(r, 10))
	b := must[*tango.Counter](t)(tango.NewCounter(r, 11))
	total := must[*tango.Counter](t)(tango.NewCounter(w.runtime(), 12, tango.WithStreams(10, 11)))
	require.NoError(t, a.Add(w.ctx, 1))
	require.NoError(t, b.Add(w.ctx, 10))
	require.NoError(t, total.Add(w.ctx, 100))
	require.NoError(t, a.Add(w.ctx, 1000))
	n, err := total.Get(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1111), n)
	n, err = a.Get(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1001), n, "the view's own updates go to its stream alone")
}
