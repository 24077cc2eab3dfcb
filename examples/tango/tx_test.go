package tango_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/storage"
)

// bank is three accounts on three registers of one runtime.
type bank struct {
	r       *tango.Runtime
	a, b, c *tango.Register[int]
}

func openBank(t *testing.T, r *tango.Runtime) bank {
	return bank{
		r: r,
		a: must[*tango.Register[int]](t)(tango.NewRegister[int](r, 1)),
		b: must[*tango.Register[int]](t)(tango.NewRegister[int](r, 2)),
		c: must[*tango.Register[int]](t)(tango.NewRegister[int](r, 3)),
	}
}

// transfer moves n from a to b inside the transaction of ctx.
func (k bank) transfer(ctx context.Context, n int) error { return move(ctx, k.a, k.b, n) }

// move moves n from one account to another inside the transaction of ctx.
func move(ctx context.Context, from, to *tango.Register[int], n int) error {
	x, err := from.Get(ctx)
	if err != nil {
		return err
	}
	y, err := to.Get(ctx)
	if err != nil {
		return err
	}
	if err := from.Set(ctx, x-n); err != nil {
		return err
	}
	return to.Set(ctx, y+n)
}

// total returns the sum of the accounts, read in one read-only transaction.
func (k bank) total(t *testing.T, ctx context.Context) int {
	t.Helper()
	sum := 0
	require.NoError(t, k.r.ReadOnly(ctx, func(ctx context.Context) error {
		sum = 0
		for _, g := range []*tango.Register[int]{k.a, k.b, k.c} {
			v, err := g.Get(ctx)
			if err != nil {
				return err
			}
			sum += v
		}
		return nil
	}))
	return sum
}

func TestTxCommit(t *testing.T) {
	w := newWorld(t)
	k, other := openBank(t, w.runtime()), openBank(t, w.runtime())
	require.NoError(t, k.a.Set(w.ctx, 100))
	require.NoError(t, k.r.RunTx(w.ctx, func(ctx context.Context) error { return k.transfer(ctx, 30) }))
	for _, kk := range []bank{k, other} {
		x, err := kk.a.Get(w.ctx)
		require.NoError(t, err)
		y, err := kk.b.Get(w.ctx)
		require.NoError(t, err)
		assert.Equal(t, []int{70, 30}, []int{x, y})
	}
}

// TestTxConflict: of two transactions that read one register and write it,
// the one whose commit record comes second aborts, and its error names the
// object, the read and the address of the first one's commit record.
func TestTxConflict(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutant=%v", skip), func(t *testing.T) {
			w := newWorld(t)
			c1, c2 := w.client(), w.client()
			if skip {
				defer tango.SetMutants(c1.Env(), tango.Mutants{SkipReadValidation: true})()
				defer tango.SetMutants(c2.Env(), tango.Mutants{SkipReadValidation: true})()
			}
			k1, k2 := openBank(t, tango.New(c1, tango.Options{})), openBank(t, tango.New(c2, tango.Options{}))
			require.NoError(t, k1.a.Set(w.ctx, 100))

			tx1, ctx1, err := k1.r.Begin(w.ctx)
			require.NoError(t, err)
			require.NoError(t, k1.transfer(ctx1, 10))

			require.NoError(t, k2.r.RunTx(w.ctx, func(ctx context.Context) error { return move(ctx, k2.a, k2.c, 20) }))
			first, ok := k2.a.Object().Version()
			require.True(t, ok)

			err = tx1.Commit(w.ctx)
			if skip {
				// The mutant commits both, the second from stale reads:
				// a is 90, b 10 and c 20.
				require.NoError(t, err)
				assert.NotEqual(t, 100, k1.total(t, w.ctx), "the mutant makes money")
				return
			}
			var ce *tango.ConflictError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, tango.ErrConflict)
			assert.Equal(t, tango.ObjectID(1), ce.Object)
			assert.True(t, ce.Whole)
			assert.Equal(t, first, ce.At, "the conflicting write is the other transaction's commit record")
			assert.LessOrEqual(t, ce.Read, ce.At)
			assert.Greater(t, ce.Commit, ce.At)
			assert.Equal(t, 100, k1.total(t, w.ctx))
			y, _ := k1.b.Get(w.ctx)
			assert.Zero(t, y)
		})
	}
}

// TestTxPerKey: a transaction that read one key of a map conflicts with a
// write of that key, not with one of another key.
func TestTxPerKey(t *testing.T) {
	w := newWorld(t)
	m1 := must[*tango.Map[string, int]](t)(tango.NewMap[string, int](w.runtime(), 5))
	m2 := must[*tango.Map[string, int]](t)(tango.NewMap[string, int](w.runtime(), 5))
	run := func(otherKey string) error {
		tx, ctx, err := m1.Object().Runtime().Begin(w.ctx)
		require.NoError(t, err)
		v, _, err := m1.Get(ctx, "x")
		require.NoError(t, err)
		require.NoError(t, m1.Put(ctx, "x", v+1))
		require.NoError(t, m2.Put(w.ctx, otherKey, 7)) // outside any transaction
		return tx.Commit(w.ctx)
	}
	require.NoError(t, run("y"))
	err := run("x")
	var ce *tango.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "x", ce.Key)
	assert.False(t, ce.Whole)
	v, _, err := m2.Get(w.ctx, "x")
	require.NoError(t, err)
	assert.Equal(t, 7, v)
}

// TestTxReadsOwnWrites: a transaction reads what it wrote, and another
// runtime sees none of it before the commit.
func TestTxReadsOwnWrites(t *testing.T) {
	w := newWorld(t)
	r := w.runtime()
	m := must[*tango.Map[string, int]](t)(tango.NewMap[string, int](r, 5))
	q := must[*tango.Queue[string]](t)(tango.NewQueue[string](r, 6))
	other := must[*tango.Map[string, int]](t)(tango.NewMap[string, int](w.runtime(), 5))
	require.NoError(t, q.Push(w.ctx, "first"))
	tx, ctx, err := r.Begin(w.ctx)
	require.NoError(t, err)
	require.NoError(t, m.Put(ctx, "a", 1))
	v, ok, err := m.Get(ctx, "a")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	require.NoError(t, m.Put(ctx, "a", 2))
	v, _, _ = m.Get(ctx, "a")
	assert.Equal(t, 2, v, "a write after the copy was made")
	head, ok, err := q.Pop(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "first", head)
	_, ok, err = other.Get(w.ctx, "a")
	require.NoError(t, err)
	assert.False(t, ok, "not before the commit")
	n, _ := q.Len(w.ctx)
	assert.Equal(t, 1, n, "the pop is buffered")
	require.NoError(t, tx.Commit(w.ctx))
	v, _, _ = other.Get(w.ctx, "a")
	assert.Equal(t, 2, v)
	n, _ = q.Len(w.ctx)
	assert.Zero(t, n)
	assert.ErrorIs(t, tx.Commit(w.ctx), tango.ErrTxDone)
}

// TestRunTxNoLostUpdates: clients increment one register by transactions,
// concurrently; RunTx retries the conflicts and no increment is lost.
func TestRunTxNoLostUpdates(t *testing.T) {
	w := newWorld(t)
	const clients, each = 4, 10
	var wg sync.WaitGroup
	for range clients {
		r := tango.New(w.client(), tango.Options{MaxRetries: 100})
		g := must[*tango.Register[int]](t)(tango.NewRegister[int](r, 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				assert.NoError(t, r.RunTx(w.ctx, func(ctx context.Context) error {
					v, err := g.Get(ctx)
					if err != nil {
						return err
					}
					return g.Set(ctx, v+1)
				}))
			}
		}()
	}
	wg.Wait()
	g := must[*tango.Register[int]](t)(tango.NewRegister[int](w.runtime(), 1))
	v, err := g.Get(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, clients*each, v)
}

// TestRunTxGivesUp: a transaction that conflicts at every attempt runs
// MaxRetries+1 times and returns its last conflict.
func TestRunTxGivesUp(t *testing.T) {
	w := newWorld(t)
	r := tango.New(w.client(), tango.Options{MaxRetries: 3})
	g := must[*tango.Register[int]](t)(tango.NewRegister[int](r, 1))
	spoiler := must[*tango.Register[int]](t)(tango.NewRegister[int](w.runtime(), 1))
	attempts := 0
	err := r.RunTx(w.ctx, func(ctx context.Context) error {
		attempts++
		v, err := g.Get(ctx)
		if err != nil {
			return err
		}
		if err := spoiler.Set(w.ctx, -attempts); err != nil { // between the read and the commit
			return err
		}
		return g.Set(ctx, v+1)
	})
	var ce *tango.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 4, attempts)
	v, err := g.Get(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, -4, v)

	// An error of fn's own ends RunTx at once.
	boom := errors.New("boom")
	attempts = 0
	err = r.RunTx(w.ctx, func(ctx context.Context) error { attempts++; return boom })
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 1, attempts)
}

// TestReadOnly: a read-only transaction sees one consistent state of two
// objects and appends nothing; an update in it fails.
func TestReadOnly(t *testing.T) {
	w := newWorld(t)
	k := openBank(t, w.runtime())
	require.NoError(t, k.a.Set(w.ctx, 100))
	mover := openBank(t, w.runtime())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			assert.NoError(t, mover.r.RunTx(w.ctx, func(ctx context.Context) error { return mover.transfer(ctx, 1) }))
		}
	}()
	for range 20 {
		assert.Equal(t, 100, k.total(t, w.ctx), "a read-only transaction sees one state")
	}
	close(stop)
	wg.Wait()
	tail, err := k.r.Client().Tail(w.ctx)
	require.NoError(t, err)
	require.NoError(t, k.r.ReadOnly(w.ctx, func(ctx context.Context) error {
		_, err := k.a.Get(ctx)
		return err
	}))
	after, err := k.r.Client().Tail(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, tail, after, "nothing appended")
	err = k.r.ReadOnly(w.ctx, func(ctx context.Context) error { return k.a.Set(ctx, 1) })
	assert.ErrorIs(t, err, tango.ErrReadOnly)
}

// TestReadAt: a snapshot at a log position holds the updates below it and
// none at or above it, transactions included.
func TestReadAt(t *testing.T) {
	w := newWorld(t)
	k := openBank(t, w.runtime())
	require.NoError(t, k.a.Set(w.ctx, 100))
	require.NoError(t, k.r.RunTx(w.ctx, func(ctx context.Context) error { return k.transfer(ctx, 40) }))
	at, ok := k.a.Object().Version() // the commit record
	require.True(t, ok)
	require.NoError(t, k.a.Set(w.ctx, 0))
	read := func(pos storage.Address) (x, y int) {
		require.NoError(t, k.r.ReadAt(w.ctx, pos, func(ctx context.Context) (err error) {
			if x, err = k.a.Get(ctx); err != nil {
				return err
			}
			y, err = k.b.Get(ctx)
			return err
		}))
		return x, y
	}
	x, y := read(at)
	assert.Equal(t, []int{100, 0}, []int{x, y}, "before the commit record")
	x, y = read(at + 1)
	assert.Equal(t, []int{60, 40}, []int{x, y}, "after it")
	err := k.r.ReadAt(w.ctx, at+1, func(ctx context.Context) error { return k.a.Set(ctx, 5) })
	assert.ErrorIs(t, err, tango.ErrReadOnly)
	err = k.r.ReadAt(w.ctx, 1<<40, func(context.Context) error { return nil })
	assert.Error(t, err, "beyond the tail")
	x, _ = read(at + 3)
	assert.Equal(t, 0, x)
}
