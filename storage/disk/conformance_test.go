package disk_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/storagetest"
	"github.com/corfulog/corfu/storage/vfs"
)

// seededRand returns a deterministic identity source.
func seededRand(seed uint64) *bytes.Reader {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return bytes.NewReader(b)
}

// testOptions are small segments, so that tests roll through several.
func testOptions() disk.Options {
	return disk.Options{Node: "n1", Rand: seededRand(1), SegmentBytes: 4 << 10}
}

// openUnit opens a unit in dir on fsys and closes it when the test ends.
func openUnit(t testing.TB, fsys vfs.FS, dir string, opts disk.Options) *disk.Unit {
	t.Helper()
	u, err := disk.Open(fsys, dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = u.Close() })
	return u
}

func TestConformanceMem(t *testing.T) {
	for _, mode := range []disk.SyncMode{disk.SyncBatch, disk.SyncEach, disk.SyncNone} {
		for _, pre := range []disk.PrewriteMode{disk.PrewriteOff, disk.PrewriteOn} {
			t.Run(mode.String()+"/prewrite="+pre.String(), func(t *testing.T) {
				storagetest.Run(t, func(t *testing.T) storage.Unit {
					opts := testOptions()
					opts.Sync, opts.Prewrite = mode, pre
					return openUnit(t, vfs.NewMem(), "/data", opts)
				})
			})
		}
	}
}

func TestConformanceOS(t *testing.T) {
	if testing.Short() {
		t.Skip("fsyncs a real disk some thousand times; TestConformanceMem runs the suite under -short")
	}
	storagetest.Run(t, func(t *testing.T) storage.Unit {
		return openUnit(t, vfs.Default, t.TempDir(), testOptions())
	})
}
