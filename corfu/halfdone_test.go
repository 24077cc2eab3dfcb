package corfu_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// TestFinishesHalfDoneReconfiguration: a reconfiguration sealed every unit
// and the sequencer at epoch 1 and died before any layout server committed
// epoch 1. The next client to need the log finishes it (with the layout
// unchanged) instead of giving up, and its append lands.
func TestFinishesHalfDoneReconfiguration(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{})
	require.NoError(t, err)
	cfg := cl.Config()
	cfg.RPCTimeout = 5 * time.Millisecond
	cfg.HoleFillWait = 20 * time.Second // patience alone would outlast the retries
	c, err := corfu.Open(ctx, cfg)
	require.NoError(t, err)
	_, err = c.Append(ctx, []byte("before"))
	require.NoError(t, err)

	for _, u := range cl.Units {
		_, err := u.Seal(ctx, 1)
		require.NoError(t, err)
	}
	_, err = cl.Sequencer.Seal(1)
	require.NoError(t, err)

	addr, err := c.Append(ctx, []byte("after"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), uint64(c.Projection().Epoch))
	require.Equal(t, uint64(1), uint64(cl.Layouts[0].Latest().Epoch))
	e, err := c.Read(ctx, addr)
	require.NoError(t, err)
	require.Equal(t, "after", string(e.Data))
}
