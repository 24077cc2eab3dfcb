package disk_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
)

// tenEntries opens a unit on a new MemFS with one large segment and writes
// "0123456789" at addresses 0-9.
func tenEntries(t *testing.T) (*vfs.MemFS, disk.Options, *disk.Unit) {
	t.Helper()
	m := vfs.NewMem()
	opts := testOptions()
	opts.SegmentBytes = 1 << 20
	u := openUnit(t, m, dir, opts)
	for a := range storage.Address(10) {
		require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
	}
	return m, opts, u
}

// payloadOf4 is the offset of a byte in address 4's payload in the first
// segment of tenEntries: the segment header, four records, its header.
const payloadOf4 = 32 + 4*(recHeader+10) + recHeader + 3

func TestRepairReplacesCorruptRecord(t *testing.T) {
	m, opts, u := tenEntries(t)
	// The disk damages the record under the running unit.
	corruptFile(t, m, dir+"/0000000000000001.seg", payloadOf4)
	_, err := u.Read(ctx, 0, 4)
	require.ErrorIs(t, err, storage.ErrCorrupt)

	require.NoError(t, u.Repair(ctx, 0, 4, []byte("repaired"), false))
	got, err := u.Read(ctx, 0, 4)
	require.NoError(t, err)
	assert.Equal(t, "repaired", string(got))
	assert.ErrorIs(t, u.Repair(ctx, 0, 4, []byte("again"), false), storage.ErrWritten,
		"the repaired record is good: write-once holds again")
	assert.ErrorIs(t, u.Write(ctx, 0, 4, []byte("x")), storage.ErrWritten)

	// A power loss: recovery meets the corrupt record, then the repair.
	_, r := crash(t, m, opts)
	for a := range storage.Address(10) {
		got, err := r.Read(ctx, 0, a)
		require.NoError(t, err, "addr %d", a)
		want := "0123456789"
		if a == 4 {
			want = "repaired"
		}
		assert.Equal(t, want, string(got), "addr %d", a)
	}
	st, data := r.Inspect(4)
	assert.Equal(t, storage.StateData, st)
	assert.Equal(t, "repaired", string(data))
	assert.Equal(t, storage.Address(10), r.Tail())
}

func TestRepairWithJunkAfterRecovery(t *testing.T) {
	m, opts, u := tenEntries(t)
	require.NoError(t, u.Close())
	corruptFile(t, m, dir+"/0000000000000001.seg", payloadOf4)
	r := openUnit(t, m, dir, opts)
	_, err := r.Read(ctx, 0, 4)
	require.ErrorIs(t, err, storage.ErrCorrupt, "corrupt at recovery")

	require.NoError(t, r.Repair(ctx, 0, 4, []byte("ignored"), true))
	_, err = r.Read(ctx, 0, 4)
	require.ErrorIs(t, err, storage.ErrJunk)
	assert.NoError(t, r.Fill(ctx, 0, 4), "junk again: a retried fill succeeds")
	assert.ErrorIs(t, r.Repair(ctx, 0, 4, nil, true), storage.ErrWritten)

	_, r2 := crash(t, m, opts)
	_, err = r2.Read(ctx, 0, 4)
	assert.ErrorIs(t, err, storage.ErrJunk, "the repair outlives a crash")
	got, err := r2.Read(ctx, 0, 5)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got))
}

func TestRepairOfGoodRecordIsRefused(t *testing.T) {
	m, opts, u := tenEntries(t)
	require.NoError(t, u.Fill(ctx, 0, 12))
	require.NoError(t, u.Trim(ctx, 0, 13))

	for _, junk := range []bool{false, true} {
		assert.ErrorIs(t, u.Repair(ctx, 0, 4, []byte("other"), junk), storage.ErrWritten, "junk %v", junk)
	}
	assert.ErrorIs(t, u.Repair(ctx, 0, 12, []byte("other"), false), storage.ErrWritten, "junk stays junk")
	assert.ErrorIs(t, u.Repair(ctx, 0, 11, []byte("other"), false), storage.ErrUnwritten)
	assert.ErrorIs(t, u.Repair(ctx, 0, 13, []byte("other"), false), storage.ErrTrimmed)
	assert.ErrorIs(t, u.Repair(ctx, 0, 4, nil, false), storage.ErrNilData)
	assert.ErrorIs(t, u.Repair(ctx, 0, storage.MaxAddress, []byte("x"), false), storage.ErrInvalidAddress)
	assert.ErrorIs(t, u.Repair(ctx, 1, 4, []byte("x"), false), storage.ErrFutureEpoch)
	_, err := u.Seal(ctx, 2)
	require.NoError(t, err)
	var sealed *storage.SealedError
	assert.ErrorAs(t, u.Repair(ctx, 1, 4, []byte("x"), false), &sealed, "checked against the epoch")

	got, err := u.Read(ctx, 2, 4)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got), "the good record stays")
	_, r := crash(t, m, opts)
	got, err = r.Read(ctx, 2, 4)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got), "and nothing replaced it on disk")
}

func TestRepairAfterMisdirectedWrite(t *testing.T) {
	m := vfs.NewMem()
	fsys := errorfs.Wrap(m, nil, errorfs.Options{})
	opts := testOptions()
	opts.SegmentBytes = 1 << 20
	u := openUnit(t, fsys, dir, opts)
	require.NoError(t, u.Write(ctx, 0, 0, []byte("first entry")))
	fsys.SetInjector(errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Misdirect, Shift: -20}))
	require.NoError(t, u.Write(ctx, 0, 1, []byte("second entry")), "the disk lies")
	fsys.SetInjector(nil)
	for a, data := range []string{"first entry", "second entry"} {
		_, err := u.Read(ctx, 0, storage.Address(a))
		require.ErrorIs(t, err, storage.ErrCorrupt, "addr %d", a)
		require.NoError(t, u.Repair(ctx, 0, storage.Address(a), []byte(data), false), "addr %d", a)
	}
	for a, data := range []string{"first entry", "second entry"} {
		got, err := u.Read(ctx, 0, storage.Address(a))
		require.NoError(t, err, "addr %d", a)
		assert.Equal(t, data, string(got))
	}
}
