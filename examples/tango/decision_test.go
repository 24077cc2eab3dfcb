package tango_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/transport"
)

// blocker fails the token requests of appends that join ControlStream once
// it has let `pass` of them through, while on.
type blocker struct {
	inner transport.Caller
	mu    sync.Mutex
	on    bool
	pass  int
}

func (b *blocker) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	if req.Op == transport.OpToken && req.N > 0 && slices.Contains(req.Streams, tango.ControlStream) {
		b.mu.Lock()
		block := b.on && b.pass == 0
		if b.on && b.pass > 0 {
			b.pass--
		}
		b.mu.Unlock()
		if block {
			return nil, fmt.Errorf("%w: blocked", transport.ErrUnreachable)
		}
	}
	return b.inner.Call(ctx, to, req)
}

// TestDecisionRecord: a runtime that hosts the object a transaction
// writes, but not the one it read, decides the commit record by the
// writer's decision record: an abort stays an abort there. Without the
// decision record it waits, and fails with an *UndecidedError, until the
// writer appends it. The mutant that decides from the hosted objects alone
// commits the aborted transaction on that runtime.
func TestDecisionRecord(t *testing.T) {
	for _, mutant := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutant=%v", mutant), func(t *testing.T) {
			w := newWorld(t)
			cfg := w.cluster.Config()
			blk := &blocker{inner: cfg.Transport}
			cfg.Transport, cfg.MaxRetries, cfg.MaxBackoff = blk, 2, 10*time.Millisecond
			gc, err := corfu.Open(w.ctx, cfg)
			require.NoError(t, err)
			g := tango.New(gc, tango.Options{})
			src := must[*tango.Register[int]](t)(tango.NewRegister[int](g, 1))
			dst := must[*tango.Register[int]](t)(tango.NewRegister[int](g, 2))

			pc := w.client()
			if mutant {
				defer tango.SetMutants(pc.Env(), tango.Mutants{ReplayWithoutDecision: true})()
			}
			p := tango.New(pc, tango.Options{DecisionWait: 50 * time.Millisecond})
			pdst := must[*tango.Register[int]](t)(tango.NewRegister[int](p, 2))
			spoiler := must[*tango.Register[int]](t)(tango.NewRegister[int](w.runtime(), 1))

			copyOver := func(ctx context.Context, plus int) error { // dst = src + plus
				v, err := src.Get(ctx)
				if err != nil {
					return err
				}
				return dst.Set(ctx, v+plus)
			}
			require.NoError(t, src.Set(w.ctx, 5))
			require.NoError(t, g.RunTx(w.ctx, func(ctx context.Context) error { return copyOver(ctx, 0) }))
			v, err := pdst.Get(w.ctx)
			require.NoError(t, err)
			assert.Equal(t, 5, v, "committed, by the decision record")

			// An abort: src changes between the read and the commit.
			tx, ctx, err := g.Begin(w.ctx)
			require.NoError(t, err)
			require.NoError(t, copyOver(ctx, 1000))
			require.NoError(t, spoiler.Set(w.ctx, 6))
			blk.mu.Lock()
			blk.on, blk.pass = true, 1 // the commit record, not the decision record
			blk.mu.Unlock()
			require.ErrorIs(t, tx.Commit(w.ctx), tango.ErrConflict)
			v, err = dst.Get(w.ctx)
			require.NoError(t, err)
			assert.Equal(t, 5, v)

			v, err = pdst.Get(w.ctx)
			if mutant {
				require.NoError(t, err)
				assert.Equal(t, 1005, v, "the mutant commits what aborted")
				return
			}
			var ue *tango.UndecidedError
			require.ErrorAs(t, err, &ue, "no decision record yet")
			require.Error(t, g.Flush(w.ctx), "still blocked")
			blk.mu.Lock()
			blk.on = false
			blk.mu.Unlock()
			require.NoError(t, g.Flush(w.ctx))
			v, err = pdst.Get(w.ctx)
			require.NoError(t, err)
			assert.Equal(t, 5, v, "aborted, by the decision record")
		})
	}
}
