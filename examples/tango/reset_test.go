package tango_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/transport"
)

// TestLoadAcrossTailReset: a checkpoint taken after a tail reset holds the
// updates written at the addresses the reset handed out again. A runtime
// whose client still holds the projection from before the reset loads it,
// and must not go back to the reset's tail and apply them twice.
func TestLoadAcrossTailReset(t *testing.T) {
	w := newWorld(t)
	stale := w.client() // opened in epoch 0, and left there
	a := w.client()
	n := must[*tango.Counter](t)(tango.NewCounter(tango.New(a, tango.Options{}), 1))
	require.NoError(t, n.Add(w.ctx, 1))
	_, err := w.cluster.Sequencer.Next(0, 5, nil) // handed out, never written
	require.NoError(t, err)

	// The sequencer is lost; its replacement starts where the units end,
	// below the addresses handed out: a tail reset.
	w.cluster.Sequencer = sequencer.New(sequencer.Config{Incarnation: 7})
	w.cluster.Net.Register("seq", &transport.Server{Sequencer: w.cluster.Sequencer})
	_, err = a.Reconfigure(w.ctx, nil)
	require.NoError(t, err)
	require.NotEmpty(t, a.Projection().Resets)
	for range 3 {
		require.NoError(t, n.Add(w.ctx, 10))
	}
	at, err := n.Object().Runtime().Checkpoint(w.ctx)
	require.NoError(t, err)
	require.Greater(t, at, a.Projection().Resets[0].Tail, "the checkpoint lies above the reset's tail")
	require.Zero(t, stale.Epoch(), "the stale client holds epoch 0")

	fresh := must[*tango.Counter](t)(tango.NewCounter(tango.New(stale, tango.Options{}), 1))
	v, err := fresh.Get(w.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(31), v)
}
