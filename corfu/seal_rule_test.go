package corfu_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/transport"
)

// TestReconfigureNeedsSequencerOrHeads: with the sequencer gone, only the
// chain heads bound what was written; a seal that reaches a tail but not its
// head must not guess the log's tail (a head-only write would later sit at
// a local address the next segment reuses). With the head back, it works.
func TestReconfigureNeedsSequencerOrHeads(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	cfg := cl.Config()
	cfg.RPCTimeout = 5 * time.Millisecond
	cfg.HoleFillWait = 20 * time.Millisecond
	cfg.MaxRetries = 2
	c, err := corfu.Open(ctx, cfg)
	require.NoError(t, err)
	_, err = c.Append(ctx, []byte("x"))
	require.NoError(t, err)

	headSrv := handlerOf(t, cl, "unit0")
	cl.Net.Remove("seq")
	cl.Net.Remove("unit0")
	_, err = c.Reconfigure(ctx, nil)
	require.ErrorIs(t, err, corfu.ErrSealIncomplete)

	// Every head answers now: the tail is known without the old
	// sequencer, and a new one takes over above it.
	cl.Net.Register("unit0", headSrv)
	cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
	p, err := c.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), uint64(p.Epoch))
	addr, err := c.Append(ctx, []byte("y"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), uint64(addr), "the new sequencer starts above the entry at 0")
}

// handlerOf returns a server for node id of cl, over the same state.
func handlerOf(t *testing.T, cl *corfutest.Cluster, id projection.NodeID) transport.Handler {
	t.Helper()
	ids, hs := cl.Handlers()
	for i, n := range ids {
		if n == id {
			return hs[i]
		}
	}
	t.Fatalf("no node %s", id)
	return nil
}
