package corfu_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// moveTo commits the cluster's layout at epoch on every layout server and
// moves the sequencer there (sealed, then bootstrapped at its tail), as a
// reconfiguration that keeps the layout would. Units are left alone.
func (e *env) moveTo(epoch storage.Epoch) {
	e.t.Helper()
	p := e.cl.Projection.Clone()
	p.Epoch = epoch
	for _, acc := range e.cl.Layouts {
		require.NoError(e.t, acc.Commit(p))
	}
	res, err := e.cl.Sequencer.Seal(epoch)
	require.NoError(e.t, err)
	require.NoError(e.t, e.cl.Sequencer.Bootstrap(epoch, res.Tail, res.Tails))
}

// sealUnits seals the given units (all, if none are named) at epoch.
func (e *env) sealUnits(epoch storage.Epoch, which ...int) {
	e.t.Helper()
	if len(which) == 0 {
		for i := range e.cl.Units {
			which = append(which, i)
		}
	}
	for _, i := range which {
		_, err := e.cl.Units[i].Seal(e.ctx, epoch)
		require.NoError(e.t, err)
	}
}

func TestRefreshOnSealed(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	before, err := e.c.Append(e.ctx, []byte("epoch 0"))
	require.NoError(t, err)
	e.moveTo(1)
	e.sealUnits(1)
	gets := e.net.count(transport.OpGetLayout)

	a, err := e.c.Append(e.ctx, []byte("epoch 1"))
	require.NoError(t, err)
	assert.Equal(t, before+1, a)
	assert.Equal(t, storage.Epoch(1), e.c.Projection().Epoch)
	assert.Equal(t, gets+1, e.net.count(transport.OpGetLayout), "one refresh")

	for addr, want := range map[storage.Address]string{before: "epoch 0", a: "epoch 1"} {
		got, err := e.c.Read(e.ctx, addr)
		require.NoError(t, err)
		assert.Equal(t, want, string(got.Data))
	}
	assert.Equal(t, gets+1, e.net.count(transport.OpGetLayout), "no more refreshes")
}

func TestRefreshOnSealedEveryOperation(t *testing.T) {
	ops := []struct {
		name string
		do   func(e *env, c *corfu.Client) error
	}{
		{name: "read", do: func(e *env, c *corfu.Client) error { _, err := c.Read(e.ctx, 0); return err }},
		{name: "tail", do: func(e *env, c *corfu.Client) error { _, err := c.Tail(e.ctx); return err }},
		{name: "fill", do: func(e *env, c *corfu.Client) error {
			err := c.Fill(e.ctx, 0)
			if errors.Is(err, corfu.ErrWritten) {
				return nil
			}
			return err
		}},
		{name: "trim", do: func(e *env, c *corfu.Client) error { return c.Trim(e.ctx, 0) }},
		{name: "prefix trim", do: func(e *env, c *corfu.Client) error { return c.PrefixTrim(e.ctx, 1) }},
		{name: "stream sync", do: func(e *env, c *corfu.Client) error { _, err := c.Stream(3, 0).Sync(e.ctx); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, nil)
			_, err := e.c.Append(e.ctx, []byte("x"), 3)
			require.NoError(t, err)
			e.moveTo(1)
			e.sealUnits(1)
			require.NoError(t, op.do(e, e.c))
			assert.Equal(t, storage.Epoch(1), e.c.Projection().Epoch)
		})
	}
}

func TestSealUnitBehindProjection(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	a0, err := e.c.Append(e.ctx, []byte("old"))
	require.NoError(t, err)
	e.moveTo(1)
	// Only the sequencer moved: every unit is still at epoch 0. A client
	// that learns of epoch 1 seals the units it talks to.
	fresh := e.open(nil)
	require.Equal(t, storage.Epoch(1), fresh.Projection().Epoch)

	a1, err := fresh.Append(e.ctx, []byte("new"))
	require.NoError(t, err)
	for _, r := range e.chain(a1) {
		assert.Equal(t, storage.Epoch(1), r.unit.Epoch(), "unit %s sealed by the client", r.id)
	}
	got, err := fresh.Read(e.ctx, a0)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got.Data))
	tail := e.chain(a0)[1]
	assert.Equal(t, storage.Epoch(1), tail.unit.Epoch(), "the tail replica, which a read asks, sealed by the client")

	// The old client, still at epoch 0, is now refused by those units and
	// catches up.
	got, err = e.c.Read(e.ctx, a1)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got.Data))
	assert.Equal(t, storage.Epoch(1), e.c.Projection().Epoch)
}

func TestSealedSurfacesWhenRefreshFails(t *testing.T) {
	ops := []struct {
		name string
		do   func(e *env) error
	}{
		{name: "append", do: func(e *env) error {
			// NB: a write refused by a seal may have been stored by an
			// earlier copy of the request (TestAppendSealedDuplicate), so
			// the outcome is unknown, caused by the seal.
			_, err := e.c.Append(e.ctx, []byte("y"))
			var unknown *corfu.UnknownOutcomeError
			if errors.As(err, &unknown) {
				return unknown.Cause
			}
			return err
		}},
		{name: "read", do: func(e *env) error { _, err := e.c.Read(e.ctx, 0); return err }},
		{name: "trim", do: func(e *env) error { return e.c.Trim(e.ctx, 0) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = 2 })
			_, err := e.c.Append(e.ctx, []byte("x"))
			require.NoError(t, err)
			// The units are sealed at epoch 1, and no layout server can be
			// reached to learn (or agree) its projection.
			e.sealUnits(1)
			e.net.setRule(func(to transport.NodeID, _ *transport.Request) action {
				if strings.HasPrefix(string(to), "layout") {
					return refuse
				}
				return pass
			})
			err = op.do(e)
			require.ErrorIs(t, err, corfu.ErrSealed)
			var sealed *storage.SealedError
			require.ErrorAs(t, err, &sealed)
			assert.Equal(t, storage.Epoch(1), sealed.Epoch)
			assert.NoError(t, e.ctx.Err())
		})
	}
}

// TestAppendSealedDuplicate: the head stores a write whose reply is lost; a
// seal follows, and a second copy of the request (a duplicating network)
// is refused, sealed, and answers the call. The client cannot learn the
// new epoch, so it cannot look at the head: the append must report an
// unknown outcome at that address, never a definite failure, since its
// entry is there. (The fault sweep found this: seeds 5220801 and 5230321 of
// the full catalog.)
func TestAppendSealedDuplicate(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = 2 })
	first, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	var writes int
	e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
		switch {
		case strings.HasPrefix(string(to), "layout"):
			return refuse
		case req.Op == transport.OpWrite:
			if writes++; writes == 1 {
				resp, err := e.cl.Net.Call(e.ctx, to, req) // stored; its reply is lost
				require.NoError(t, err)
				require.NoError(t, resp.Err)
				e.sealUnits(1)
			}
		}
		return pass
	})
	_, err = e.c.Append(e.ctx, []byte("y"))
	var unknown *corfu.UnknownOutcomeError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, first+1, unknown.Addr)
	e.net.setRule(nil)
	got, err := e.c.Read(e.ctx, unknown.Addr)
	require.NoError(t, err)
	assert.Equal(t, "y", string(got.Data))
}
