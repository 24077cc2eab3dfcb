package transport_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
	"github.com/corfulog/corfu/transport"
)

// TestUnitClientRepair repairs, over the codec, two records a misdirected
// write damaged on a durable unit: one with data, one with junk.
func TestUnitClientRepair(t *testing.T) {
	ctx := context.Background()
	fsys := errorfs.Wrap(vfs.NewMem(), nil, errorfs.Options{})
	du, err := disk.Open(fsys, "/data", disk.Options{ID: disk.ID{1}, SegmentBytes: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = du.Close() })
	u := transport.UnitClient{Caller: serverCaller{&transport.Server{Unit: du}}, Node: "unit0"}

	require.NoError(t, u.Write(ctx, 0, 0, []byte("first entry")))
	fsys.SetInjector(errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Misdirect, Shift: -20}))
	require.NoError(t, u.Write(ctx, 0, 1, []byte("second entry")), "the disk lies")
	fsys.SetInjector(nil)
	for a := range storage.Address(2) {
		_, err := u.Read(ctx, 0, a)
		require.ErrorIs(t, err, storage.ErrCorrupt, "addr %d", a)
	}

	require.NoError(t, u.Repair(ctx, 0, 0, []byte("first entry"), false))
	require.NoError(t, u.Repair(ctx, 0, 1, []byte("not sent"), true))
	got, err := u.Read(ctx, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, "first entry", string(got))
	_, err = u.Read(ctx, 0, 1)
	assert.ErrorIs(t, err, storage.ErrJunk, "the junk flag crossed the wire")
	assert.ErrorIs(t, u.Repair(ctx, 0, 0, []byte("other"), false), storage.ErrWritten, "a good record stays")
	assert.ErrorIs(t, u.Repair(ctx, 0, 2, []byte("x"), false), storage.ErrUnwritten)
	assert.ErrorIs(t, u.Repair(ctx, 0, 0, make([]byte, transport.MaxFrameBytes), false), storage.ErrTooLarge)
}

func TestRepairNeedsARepairer(t *testing.T) {
	ctx := context.Background()
	for name, srv := range map[string]*transport.Server{
		"no unit":     {},
		"memory unit": {Unit: storage.NewMemory()},
		"plain unit":  {Unit: plainUnit{storage.NewMemory()}},
	} {
		u := transport.UnitClient{Caller: serverCaller{srv}, Node: "unit0"}
		assert.ErrorIs(t, u.Repair(ctx, 0, 0, []byte("x"), false), transport.ErrWrongRole, name)
	}
	assert.Equal(t, "repair", transport.OpRepair.String())
	assert.True(t, transport.OpRepair.Valid())
}
