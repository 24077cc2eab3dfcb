package corfu_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport"
)

// TestReconfigureOverLaggingLayoutServer: a layout server that missed an
// epoch accepted, for the next one, a proposal made from the projection it
// still had. A later reconfiguration must neither adopt that stale value
// (the up-to-date servers refuse it, so the epoch would wedge) nor fail: it
// brings the laggard up to date and commits a proper successor. Found by
// the fault sweep (seed 6575).
func TestReconfigureOverLaggingLayoutServer(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Spares: 1})
	require.NoError(t, err)
	c, err := corfu.Open(ctx, cl.Config())
	require.NoError(t, err)
	_, err = c.Append(ctx, []byte("before"))
	require.NoError(t, err)
	p1, err := c.Reconfigure(ctx, corfu.ReplaceUnit("unit0", "spare0"))
	require.NoError(t, err)
	require.Len(t, p1.Segments, 2)

	// layout0 forgets epoch 1 and accepts a stale epoch-2 proposal.
	lagging := projection.NewAcceptor(cl.Projection)
	stale := cl.Projection.Clone()
	stale.Epoch = 2
	_, _, err = lagging.Prepare(2, 1)
	require.NoError(t, err)
	require.NoError(t, lagging.Propose(2, 1, stale))
	cl.Net.Register("layout0", &transport.Server{Layout: lagging})

	p2, err := c.Reconfigure(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), uint64(p2.Epoch))
	require.NoError(t, projection.ValidateNext(p1, p2), "the committed epoch 2 must follow epoch 1")
	require.True(t, lagging.Latest().Equal(p2), "the lagging server learned epoch 2")
	addr, err := c.Append(ctx, []byte("after"))
	require.NoError(t, err)
	e, err := c.Read(ctx, addr)
	require.NoError(t, err)
	require.Equal(t, "after", string(e.Data))
}
