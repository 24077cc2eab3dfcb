package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// opaqueUnit hides its unit's inspection methods: a unit the simulator
// cannot check.
type opaqueUnit struct{ storage.Unit }

// opaqueDisk brings every unit back as an opaqueUnit.
type opaqueDisk struct{}

func (opaqueDisk) Restart(node transport.NodeID, kind sim.FaultKind, u storage.Unit) (storage.Unit, error) {
	return opaqueUnit{u}, nil
}

// TestClusterRefusesUninspectableUnit: a Disk that brings a unit back
// without storage.Inspector makes the restart fail, loudly, instead of
// leaving the S8, S16 and blank-unit checks blind to that unit.
func TestClusterRefusesUninspectableUnit(t *testing.T) {
	s := sim.NewScheduler(1)
	defer s.Close()
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	cl, err := sim.NewCluster(s, n, sim.ClusterConfig{})
	require.NoError(t, err)
	cl.Disk = opaqueDisk{}
	before := cl.ServingUnit("unit0")
	require.NoError(t, cl.Crash("unit0"))
	err = cl.Restart("unit0")
	require.ErrorIs(t, err, sim.ErrNoInspector)
	assert.Same(t, before, cl.ServingUnit("unit0"), "the refused unit is not served")
}

// TestFencingSeesAnyInspector: the S8 check reads the sealed epoch through
// storage.Inspector, so it holds for a unit of any type the Disk brings
// back: a unit that serves a request of an older epoch than its seal is
// reported.
func TestFencingSeesAnyInspector(t *testing.T) {
	s := sim.NewScheduler(1)
	defer s.Close()
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	cl, err := sim.NewCluster(s, n, sim.ClusterConfig{})
	require.NoError(t, err)
	cl.Disk = lenientDisk{}
	require.NoError(t, cl.Crash("unit0"))
	require.NoError(t, cl.Restart("unit0"))
	_, isMemory := cl.ServingUnit("unit0").(*storage.Memory)
	require.False(t, isMemory)

	var sealErr, writeErr error
	var resp *transport.Response
	s.Go("client", func() {
		c := n.Caller("client1")
		ctx := context.Background()
		_, sealErr = c.Call(ctx, "unit0", &transport.Request{Op: transport.OpSeal, Epoch: 3})
		resp, writeErr = c.Call(ctx, "unit0", &transport.Request{Op: transport.OpWrite, Epoch: 1, Addr: 0, Data: []byte("stale")})
	})
	require.NoError(t, s.Run())
	require.NoError(t, sealErr)
	require.NoError(t, writeErr)
	require.NoError(t, resp.Err, "the lenient unit serves the stale write")
	var s8 bool
	for _, v := range cl.Monitor.Violations() {
		s8 = s8 || v.Invariant == "S8"
	}
	assert.True(t, s8, "a stale write served by a non-Memory unit is caught: %v", cl.Monitor.Violations())
}

// lenientUnit is an inspectable unit, not a *storage.Memory, that serves
// requests of any epoch up to its own (a broken unit, for the S8 check).
type lenientUnit struct{ *storage.Memory }

func (u lenientUnit) Write(ctx context.Context, e storage.Epoch, a storage.Address, d []byte) error {
	return u.Memory.Write(ctx, max(e, u.Epoch()), a, d)
}

// lenientDisk brings every unit back as a lenientUnit holding what it held.
type lenientDisk struct{}

func (lenientDisk) Restart(node transport.NodeID, kind sim.FaultKind, u storage.Unit) (storage.Unit, error) {
	return lenientUnit{u.(*storage.Memory)}, nil
}
