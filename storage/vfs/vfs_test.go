package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage/vfs"
)

// writeFile creates name on fsys holding data, synced if sync is set.
func writeFile(t *testing.T, fsys vfs.FS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fsys.Create(name)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

// readFile returns the contents of name on fsys.
func readFile(t *testing.T, fsys vfs.FS, name string) ([]byte, error) {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// testBasics exercises the operations every FS offers alike.
func testBasics(t *testing.T, fsys vfs.FS, root string) {
	dir := fsys.PathJoin(root, "a", "b")
	require.NoError(t, fsys.MkdirAll(dir, 0o755))
	name := fsys.PathJoin(dir, "f")
	writeFile(t, fsys, name, []byte("hello"), true)

	got, err := readFile(t, fsys, name)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))

	f, err := fsys.OpenReadWrite(name)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("J"), 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("!!"), 5)
	require.NoError(t, err)
	buf := make([]byte, 3)
	n, err := f.ReadAt(buf, 4)
	require.NoError(t, err)
	assert.Equal(t, "o!!", string(buf[:n]))
	_, err = f.ReadAt(buf, 6)
	assert.ErrorIs(t, err, io.EOF, "a short ReadAt reports io.EOF")
	require.NoError(t, f.Truncate(4))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 4, fi.Size())
	require.NoError(t, f.Sync())
	_, err = f.WriteAt([]byte("!"), 3)
	require.NoError(t, err)
	require.NoError(t, vfs.SyncData(f), "fdatasync, or Sync where there is none")
	require.NoError(t, f.Close())

	other := fsys.PathJoin(dir, "g")
	require.NoError(t, fsys.Rename(name, other))
	require.NoError(t, vfs.SyncDir(fsys, dir))
	names, err := fsys.List(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"g"}, names)
	_, err = fsys.Stat(name)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	got, err = readFile(t, fsys, other)
	require.NoError(t, err)
	assert.Equal(t, "Jel!", string(got))

	writeFile(t, fsys, fsys.PathJoin(root, "a", "h"), []byte("123"), false)
	usage, err := vfs.Usage(fsys, fsys.PathJoin(root, "a"))
	require.NoError(t, err)
	assert.EqualValues(t, 7, usage)

	lockName := fsys.PathJoin(root, "LOCK")
	l, err := fsys.Lock(lockName)
	require.NoError(t, err)
	_, err = fsys.Lock(lockName)
	assert.Error(t, err, "a held lock refuses a second holder")
	require.NoError(t, l.Close())
	l, err = fsys.Lock(lockName)
	require.NoError(t, err, "a released lock can be taken again")
	require.NoError(t, l.Close())

	require.NoError(t, fsys.Remove(other))
	_, err = fsys.Stat(other)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Error(t, fsys.Remove(fsys.PathJoin(root, "a")), "a non-empty directory is not removed")
	require.NoError(t, fsys.RemoveAll(fsys.PathJoin(root, "a")))
	require.NoError(t, fsys.RemoveAll(fsys.PathJoin(root, "a")), "RemoveAll of nothing succeeds")
	_, err = fsys.Stat(dir)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestDefault(t *testing.T) { testBasics(t, vfs.Default, t.TempDir()) }

func TestMemBasics(t *testing.T) { testBasics(t, vfs.NewMem(), "/data") }

// crashRead returns what name holds after a crash of m, or the error.
func crashRead(t *testing.T, m *vfs.MemFS, name string) ([]byte, error) {
	t.Helper()
	return readFile(t, m.CrashClone(vfs.CrashOptions{}), name)
}

func TestMemUnsyncedDataIsLost(t *testing.T) {
	m := vfs.NewMem()
	require.NoError(t, m.MkdirAll("/d", 0o755))
	require.NoError(t, vfs.SyncDir(m, "/"))
	f, err := m.Create("/d/f")
	require.NoError(t, err)
	require.NoError(t, vfs.SyncDir(m, "/d"))
	_, err = f.Write([]byte("synced"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	_, err = f.Write([]byte("+lost"))
	require.NoError(t, err)

	got, err := crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "synced", string(got))
	live, err := readFile(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "synced+lost", string(live), "the crash clone leaves the live FS alone")

	_, err = f.WriteAt([]byte("S"), 0) // an in-place overwrite, unsynced
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2)) // and a truncation, unsynced
	got, err = crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "synced", string(got))
	require.NoError(t, f.Sync())
	got, err = crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "Sy", string(got))

	_, err = f.WriteAt([]byte("nc"), 2)
	require.NoError(t, err)
	require.NoError(t, vfs.SyncData(f))
	got, err = crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "Sync", string(got), "SyncData makes the data durable")
}

func TestMemDirectoryEntriesNeedDirSync(t *testing.T) {
	m := vfs.NewMem()
	require.NoError(t, m.MkdirAll("/d", 0o755))
	writeFile(t, m, "/d/f", []byte("x"), true)

	_, err := crashRead(t, m, "/d/f")
	assert.ErrorIs(t, err, fs.ErrNotExist, "the new directory's entry was never synced into the root")

	require.NoError(t, vfs.SyncDir(m, "/"))
	_, err = crashRead(t, m, "/d/f")
	assert.ErrorIs(t, err, fs.ErrNotExist, "a synced file whose entry was never synced is lost")

	require.NoError(t, vfs.SyncDir(m, "/d"))
	got, err := crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))

	// A rename is durable only once the directory is synced: a crash
	// before that keeps the old name, with its (synced) contents.
	writeFile(t, m, "/d/tmp", []byte("new"), true)
	require.NoError(t, m.Rename("/d/tmp", "/d/f"))
	got, err = crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))
	require.NoError(t, vfs.SyncDir(m, "/d"))
	got, err = crashRead(t, m, "/d/f")
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))

	// So is a remove.
	require.NoError(t, m.Remove("/d/f"))
	_, err = crashRead(t, m, "/d/f")
	require.NoError(t, err, "an unsynced remove is undone by a crash")
	require.NoError(t, vfs.SyncDir(m, "/d"))
	_, err = crashRead(t, m, "/d/f")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestMemTornTail(t *testing.T) {
	m := vfs.NewMem()
	writeFile(t, m, "/f", []byte("0123"), true)
	require.NoError(t, vfs.SyncDir(m, "/"))
	f, err := m.OpenReadWrite("/f")
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("456789abcdef"), 4)
	require.NoError(t, err)

	lengths := map[int]bool{}
	for seed := range uint64(64) {
		rng := rand.New(rand.NewPCG(seed, 0))
		c := m.CrashClone(vfs.CrashOptions{Rand: rng})
		got, err := readFile(t, c, "/f")
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix([]byte("0123456789abcdef"), got),
			"seed %d: a torn tail is a prefix of what was written, got %q", seed, got)
		require.GreaterOrEqual(t, len(got), 4, "seed %d: synced bytes survive", seed)
		lengths[len(got)] = true

		again := m.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 0))})
		got2, err := readFile(t, again, "/f")
		require.NoError(t, err)
		require.Equal(t, got, got2, "seed %d: the same seed tears the same way", seed)
	}
	assert.Greater(t, len(lengths), 4, "torn tails vary with the seed")
}

func TestMemCrashCloneIsIndependent(t *testing.T) {
	m := vfs.NewMem()
	writeFile(t, m, "/f", []byte("abc"), true)
	require.NoError(t, vfs.SyncDir(m, "/"))
	l, err := m.Lock("/LOCK")
	require.NoError(t, err)
	defer l.Close()
	c := m.CrashClone(vfs.CrashOptions{})

	cl, err := c.Lock("/LOCK")
	require.NoError(t, err, "a lock dies with the power")
	require.NoError(t, cl.Close())
	f, err := c.OpenReadWrite("/f")
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("X"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	got, err := readFile(t, m, "/f")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got), "writes to the clone do not reach the original")
}

func TestMemErrors(t *testing.T) {
	m := vfs.NewMem()
	_, err := m.Open("/nope")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = m.Create("/nodir/f")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	writeFile(t, m, "/f", nil, false)
	_, err = m.OpenDir("/f")
	assert.Error(t, err, "a file is not a directory")
	assert.Error(t, m.MkdirAll("/f/g", 0o755), "a file is not a directory")
	r, err := m.Open("/f")
	require.NoError(t, err)
	_, err = r.Write([]byte("x"))
	assert.Error(t, err, "a file opened with Open is read-only")
	require.NoError(t, r.Close())
	assert.Error(t, r.Close(), "a second close fails")
	_, err = r.Read(make([]byte, 1))
	assert.Error(t, err, "a closed file reads nothing")
	assert.True(t, errors.Is(m.Rename("/nope", "/x"), fs.ErrNotExist))
}

func TestMemScatteredTear(t *testing.T) {
	m := vfs.NewMem()
	writeFile(t, m, "/f", bytes.Repeat([]byte{'s'}, 100), true)
	require.NoError(t, vfs.SyncDir(m, "/"))
	f, err := m.OpenReadWrite("/f")
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{'n'}, 400), 50) // over synced bytes and past them
	require.NoError(t, err)

	holes := 0
	for seed := range uint64(64) {
		c := m.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 0)), BlockSize: 64})
		got, err := readFile(t, c, "/f")
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(got), 100, "seed %d: the synced length survives", seed)
		require.Equal(t, bytes.Repeat([]byte{'s'}, 50), got[:50], "seed %d: bytes never rewritten", seed)
		for i := 50; i < len(got); i++ {
			want := []byte{'n', 's'}
			if i >= 100 {
				want = []byte{'n', 0}
			}
			require.Contains(t, want, got[i], "seed %d byte %d", seed, i)
			if i%64 != 0 || i+64 > len(got) {
				continue
			}
			if got[i] != 'n' && got[i+63] != 'n' && bytes.Contains(got[i+64:], []byte{'n'}) {
				holes++ // a block lost below one that survived
			}
		}
	}
	assert.Positive(t, holes, "some tears keep later blocks and lose earlier ones")
}
