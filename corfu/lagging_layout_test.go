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

// TestReconfigureOverLaggingLayoutServer: a layout server missed epoch 1's
// commit and still holds a losing proposal for it, made from the projection
// it had. A later reconfiguration must neither be misled by that stale value
// nor fail: it brings the laggard up to date and commits a proper successor
// of epoch 1. Found by the fault sweep (seed 6575), when acceptors still
// took epochs past the next one.
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

	// layout0 forgets epoch 1's commit and holds, for epoch 1, a stale
	// proposal that lost (the layout unchanged).
	lagging := projection.NewAcceptor(cl.Projection)
	stale := cl.Projection.Clone()
	stale.Epoch = 1
	_, _, err = lagging.Prepare(1, 1)
	require.NoError(t, err)
	require.NoError(t, lagging.Propose(1, 1, stale))
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
