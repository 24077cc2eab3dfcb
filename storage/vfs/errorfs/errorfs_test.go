package errorfs_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
)

// contents returns what name holds on the wrapped FS, read around faults.
func contents(t *testing.T, fsys vfs.FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b)
}

// newFile creates /f holding "0123456789" on a MemFS wrapped with inj.
func newFile(t *testing.T, inj errorfs.Injector, opts errorfs.Options) (*errorfs.FS, *vfs.MemFS, vfs.File) {
	t.Helper()
	mem := vfs.NewMem()
	fsys := errorfs.Wrap(mem, nil, opts)
	f, err := fsys.Create("/f")
	require.NoError(t, err)
	_, err = f.Write([]byte("0123456789"))
	require.NoError(t, err)
	fsys.SetInjector(inj)
	return fsys, mem, f
}

func TestError(t *testing.T) {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpSync), 1, errorfs.Fault{Kind: errorfs.Error})
	_, _, f := newFile(t, inj, errorfs.Options{})
	require.NoError(t, f.Sync(), "sync 0 passes")
	err := f.Sync()
	assert.ErrorIs(t, err, errorfs.ErrInjected, "sync 1 fails")
	require.NoError(t, f.Sync(), "sync 2 passes")
}

func TestErrorOnEveryKind(t *testing.T) {
	for _, tc := range []struct {
		kind errorfs.OpKind
		run  func(fsys vfs.FS, f vfs.File) error
	}{
		{errorfs.OpCreate, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.Create("/g"); return err }},
		{errorfs.OpOpen, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.Open("/f"); return err }},
		{errorfs.OpOpenDir, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.OpenDir("/"); return err }},
		{errorfs.OpRemove, func(fsys vfs.FS, _ vfs.File) error { return fsys.Remove("/f") }},
		{errorfs.OpRename, func(fsys vfs.FS, _ vfs.File) error { return fsys.Rename("/f", "/g") }},
		{errorfs.OpMkdirAll, func(fsys vfs.FS, _ vfs.File) error { return fsys.MkdirAll("/d", 0o755) }},
		{errorfs.OpLock, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.Lock("/LOCK"); return err }},
		{errorfs.OpList, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.List("/"); return err }},
		{errorfs.OpStat, func(fsys vfs.FS, _ vfs.File) error { _, err := fsys.Stat("/f"); return err }},
		{errorfs.OpRead, func(_ vfs.FS, f vfs.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{errorfs.OpWrite, func(_ vfs.FS, f vfs.File) error { _, err := f.Write([]byte("x")); return err }},
		{errorfs.OpTruncate, func(_ vfs.FS, f vfs.File) error { return f.Truncate(0) }},
		{errorfs.OpClose, func(_ vfs.FS, f vfs.File) error { return f.Close() }},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			inj := errorfs.OnIndex(errorfs.Ops(tc.kind), 0, errorfs.Fault{Kind: errorfs.Error})
			fsys, mem, f := newFile(t, inj, errorfs.Options{})
			assert.ErrorIs(t, tc.run(fsys, f), errorfs.ErrInjected)
			names, err := mem.List("/")
			require.NoError(t, err)
			assert.Equal(t, []string{"f"}, names, "a failed operation does nothing")
			assert.Equal(t, "0123456789", contents(t, mem, "/f"))
		})
	}
}

func TestNoSpace(t *testing.T) {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.NoSpace})
	_, mem, f := newFile(t, inj, errorfs.Options{})
	n, err := f.Write([]byte("abc"))
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Zero(t, n)
	assert.Equal(t, "0123456789", contents(t, mem, "/f"))
}

func TestDelay(t *testing.T) {
	var delayed []errorfs.Op
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpSync), 0, errorfs.Fault{Kind: errorfs.Delay})
	_, _, f := newFile(t, inj, errorfs.Options{Delay: func(op errorfs.Op) { delayed = append(delayed, op) }})
	require.NoError(t, f.Sync(), "a slow sync still syncs")
	require.NoError(t, f.Sync())
	require.Len(t, delayed, 1)
	assert.Equal(t, errorfs.OpSync, delayed[0].Kind)
	assert.Equal(t, "/f", delayed[0].Path)
}

func TestCorrupt(t *testing.T) {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpRead), 0, errorfs.Fault{Kind: errorfs.Corrupt, Bit: 8*3 + 1})
	fsys, mem, _ := newFile(t, inj, errorfs.Options{})
	buf := make([]byte, 10)
	r, err := fsys.Open("/f")
	require.NoError(t, err)
	_, err = r.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "012"+string('3'^2)+"456789", string(buf), "bit 1 of byte 3 flipped")
	_, err = r.ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(buf), "the disk itself is intact")
	assert.Equal(t, "0123456789", contents(t, mem, "/f"))
}

func TestMisdirect(t *testing.T) {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Misdirect, Shift: -8})
	_, mem, f := newFile(t, inj, errorfs.Options{})
	n, err := f.WriteAt([]byte("ab"), 10)
	require.NoError(t, err, "a misdirected write reports success")
	assert.Equal(t, 2, n)
	assert.Equal(t, "01ab456789", contents(t, mem, "/f"))
}

func TestTorn(t *testing.T) {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Torn, Keep: 2})
	_, mem, f := newFile(t, inj, errorfs.Options{})
	n, err := f.Write([]byte("abcd"))
	require.NoError(t, err, "a torn write reports success")
	assert.Equal(t, 4, n)
	assert.Equal(t, "0123456789ab", contents(t, mem, "/f"), "only the first two bytes landed")
	_, err = f.Write([]byte("XY"))
	require.NoError(t, err)
	assert.Equal(t, "0123456789ab\x00\x00XY", contents(t, mem, "/f"),
		"the file offset moved past the whole torn write")
}

func TestWithProbability(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inj := errorfs.WithProbability(rng, 0.5, errorfs.Ops(errorfs.OpStat), errorfs.Fault{Kind: errorfs.Error})
	fsys := errorfs.Wrap(vfs.NewMem(), inj, errorfs.Options{})
	failed := 0
	for range 1000 {
		if _, err := fsys.Stat("/"); err != nil {
			require.ErrorIs(t, err, errorfs.ErrInjected)
			failed++
		}
		_, err := fsys.List("/")
		require.NoError(t, err, "other kinds are never hit")
	}
	assert.InDelta(t, 500, failed, 100)
}

func TestAnyAndPathContains(t *testing.T) {
	inj := errorfs.Any(
		errorfs.OnIndex(errorfs.PathContains("seg", errorfs.OpRead), 0, errorfs.Fault{Kind: errorfs.Error}),
		errorfs.InjectorFunc(func(op errorfs.Op) errorfs.Fault {
			if op.Kind == errorfs.OpRemove {
				return errorfs.Fault{Kind: errorfs.NoSpace}
			}
			return errorfs.Fault{}
		}),
	)
	mem := vfs.NewMem()
	for _, name := range []string{"/meta", "/seg1"} {
		f, err := mem.Create(name)
		require.NoError(t, err)
		_, err = f.Write([]byte("x"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	fsys := errorfs.Wrap(mem, inj, errorfs.Options{})
	assert.Equal(t, "x", contents(t, fsys, "/meta"), "another path is not hit")
	f, err := fsys.Open("/seg1")
	require.NoError(t, err)
	_, err = f.Read(make([]byte, 1))
	assert.True(t, errors.Is(err, errorfs.ErrInjected))
	assert.ErrorIs(t, fsys.Remove("/meta"), syscall.ENOSPC)
}
