package persist_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport/persist"
)

const dir = "/state"

// initial returns a small valid projection of epoch.
func initial(epoch storage.Epoch) *projection.Projection {
	return &projection.Projection{
		Epoch:     epoch,
		Sequencer: "seq",
		Layout:    []projection.NodeID{"layout0"},
		Segments:  []projection.Segment{{Stripes: []projection.Chain{{"unit0", "unit1"}}}},
	}
}

func open(t *testing.T, fs vfs.FS, node string) *persist.Dir {
	t.Helper()
	d, err := persist.Open(fs, dir, persist.Options{Node: node})
	require.NoError(t, err)
	return d
}

// markOf returns the mark d saved, and whether one was saved.
func markOf(d *persist.Dir) (storage.Address, bool) {
	st, ok := d.Sequencer()
	return st.Mark, ok
}

// saveMark saves a sequencer state of mark alone.
func saveMark(d *persist.Dir, mark storage.Address) error {
	return d.SaveSequencer(sequencer.State{Mark: mark})
}

// readFile returns a file of the state directory.
func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(fs.PathJoin(dir, name))
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return b
}

// writeFile replaces a file of the state directory, durably.
func writeFile(t *testing.T, fs vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fs.Create(fs.PathJoin(dir, name))
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	require.NoError(t, vfs.SyncDir(fs, dir))
}

// TestRestartRestoresState: what was saved is what a reopened directory
// loads, and every open takes a new incarnation.
func TestRestartRestoresState(t *testing.T) {
	fs := vfs.NewMem()
	d := open(t, fs, "seq")
	_, ok := markOf(d)
	assert.False(t, ok, "a new directory has no mark")
	_, ok = d.Layout()
	assert.False(t, ok, "a new directory has no layout state")
	inc := d.Incarnation()
	assert.GreaterOrEqual(t, inc, uint64(1))

	require.NoError(t, saveMark(d, 64))
	require.NoError(t, saveMark(d, 128))
	require.NoError(t, saveMark(d, 100), "a lower mark keeps the saved one")
	st := projection.AcceptorState{Latest: initial(3), Promised: 9, AcceptedRank: 7, Accepted: initial(4)}
	require.NoError(t, d.SaveLayout(st))
	require.NoError(t, d.Close())
	assert.ErrorIs(t, saveMark(d, 200), persist.ErrClosed)

	d = open(t, fs, "seq")
	defer d.Close()
	mark, ok := markOf(d)
	assert.True(t, ok)
	assert.Equal(t, storage.Address(128), mark)
	got, ok := d.Layout()
	require.True(t, ok)
	assert.Equal(t, st.Promised, got.Promised)
	assert.Equal(t, st.AcceptedRank, got.AcceptedRank)
	assert.True(t, st.Latest.Equal(got.Latest))
	assert.True(t, st.Accepted.Equal(got.Accepted))
	assert.Equal(t, inc+1, d.Incarnation())
	_, err := projection.RestoreAcceptor(got)
	require.NoError(t, err)
}

// TestLocked: a directory serves one Dir at a time.
func TestLocked(t *testing.T) {
	fs := vfs.NewMem()
	d := open(t, fs, "seq")
	_, err := persist.Open(fs, dir, persist.Options{Node: "seq"})
	require.Error(t, err)
	require.NoError(t, d.Close())
	open(t, fs, "seq").Close()
}

// TestSaveRefusesInvalidLayout: a state no acceptor restarts from is never
// written, so the directory keeps one it can.
func TestSaveRefusesInvalidLayout(t *testing.T) {
	fs := vfs.NewMem()
	d := open(t, fs, "layout0")
	defer d.Close()
	err := d.SaveLayout(projection.AcceptorState{Promised: 3})
	require.ErrorIs(t, err, projection.ErrInvalid)
	err = d.SaveLayout(projection.AcceptorState{Latest: initial(1), Promised: 1, AcceptedRank: 2, Accepted: initial(2)})
	require.ErrorIs(t, err, projection.ErrInvalid, "accepted above the promise")
	require.NoError(t, d.SaveLayout(projection.AcceptorState{Latest: initial(1)}), "a refused save does not break the directory")
}

// crashFS calls before ahead of every call that changes the filesystem
// (on the FS or on a File), so that a test can take a power loss's
// snapshot at any point of a save.
type crashFS struct {
	vfs.FS
	before func(op string)
}

func (c *crashFS) file(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, before: c.before}, nil
}

func (c *crashFS) Create(name string) (vfs.File, error) {
	c.before("create " + name)
	return c.file(c.FS.Create(name))
}
func (c *crashFS) Open(name string) (vfs.File, error) { return c.file(c.FS.Open(name)) }
func (c *crashFS) OpenReadWrite(name string) (vfs.File, error) {
	c.before("open " + name)
	return c.file(c.FS.OpenReadWrite(name))
}
func (c *crashFS) OpenDir(name string) (vfs.File, error) { return c.file(c.FS.OpenDir(name)) }
func (c *crashFS) Remove(name string) error {
	c.before("remove " + name)
	return c.FS.Remove(name)
}
func (c *crashFS) Rename(a, b string) error {
	c.before("rename " + a)
	return c.FS.Rename(a, b)
}

type crashFile struct {
	vfs.File
	before func(op string)
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.before("write")
	return f.File.Write(p)
}
func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.before("write")
	return f.File.WriteAt(p, off)
}
func (f *crashFile) Sync() error {
	f.before("sync")
	return f.File.Sync()
}

// TestCrashKeepsOldOrNewState: a power loss at any point of a save (after
// the temporary file's write or its sync, after the rename, before the
// directory's sync) leaves the old state or the new one, and a save that
// returned is never lost.
func TestCrashKeepsOldOrNewState(t *testing.T) {
	for step := 0; ; step++ {
		mem := vfs.NewMem()
		d := open(t, mem, "seq")
		require.NoError(t, saveMark(d, 10))
		n := 0
		var snap *vfs.MemFS
		var at string
		fs := &crashFS{FS: mem, before: func(op string) {
			if n == step {
				snap, at = mem.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(step), 1))}), op
			}
			n++
		}}
		require.NoError(t, d.Close())
		d, err := persist.Open(fs, dir, persist.Options{Node: "seq"})
		require.NoError(t, err)
		require.NoError(t, saveMark(d, 20))
		if snap == nil {
			require.Greater(t, step, 3, "the save was cut at every step")
			return
		}
		re := open(t, snap, "seq")
		mark, ok := markOf(re)
		require.True(t, ok, "cut at %s", at)
		assert.Contains(t, []storage.Address{10, 20}, mark, "cut at step %d (%s)", step, at)
		re.Close()
		d.Close()
	}
}

// TestRenameNotSyncedIsOldState: a crash after the rename and before the
// directory's sync keeps the old file, on a filesystem that makes a rename
// durable only with its directory (MemFS does); once the save returned,
// the new one is durable.
func TestRenameNotSyncedIsOldState(t *testing.T) {
	mem := vfs.NewMem()
	d := open(t, mem, "seq")
	require.NoError(t, saveMark(d, 10))
	require.NoError(t, d.Close())
	var snap *vfs.MemFS
	renamed := false
	fs := &crashFS{FS: mem, before: func(op string) {
		if renamed && snap == nil {
			snap = mem.CrashClone(vfs.CrashOptions{}) // the directory's sync is next
		}
		renamed = strings.HasPrefix(op, "rename") && strings.Contains(op, "SEQUENCER")
	}}
	d, err := persist.Open(fs, dir, persist.Options{Node: "seq"})
	require.NoError(t, err)
	defer d.Close()
	snap = nil
	require.NoError(t, saveMark(d, 20))
	require.NotNil(t, snap)
	re := open(t, snap, "seq")
	mark, _ := markOf(re)
	re.Close()
	assert.Equal(t, storage.Address(10), mark, "a rename whose directory was not synced is lost")
	re = open(t, mem.CrashClone(vfs.CrashOptions{}), "seq")
	defer re.Close()
	mark, _ = markOf(re)
	assert.Equal(t, storage.Address(20), mark, "a save that returned is durable")
}

// TestRefusesDamage: every kind of damage makes Open refuse with its error,
// never start empty.
func TestRefusesDamage(t *testing.T) {
	// setup returns a directory with state saved in it.
	setup := func(t *testing.T) *vfs.MemFS {
		fs := vfs.NewMem()
		d := open(t, fs, "node1")
		require.NoError(t, saveMark(d, 77))
		require.NoError(t, d.SaveLayout(projection.AcceptorState{Latest: initial(2), Promised: 4, AcceptedRank: 3, Accepted: initial(3)}))
		require.NoError(t, d.Close())
		return fs
	}
	reframe := func(b []byte, edit func([]byte)) []byte {
		b = bytes.Clone(b)
		edit(b)
		end := len(b) - 4
		binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	cases := []struct {
		name string
		harm func(t *testing.T, fs *vfs.MemFS)
		want error
	}{
		{"flipped bit in the layout", func(t *testing.T, fs *vfs.MemFS) {
			b := readFile(t, fs, "LAYOUT")
			b[len(b)/2] ^= 0x10
			writeFile(t, fs, "LAYOUT", b)
		}, persist.ErrCorrupt},
		{"torn sequencer file", func(t *testing.T, fs *vfs.MemFS) {
			b := readFile(t, fs, "SEQUENCER")
			writeFile(t, fs, "SEQUENCER", b[:len(b)-3])
		}, persist.ErrCorrupt},
		{"empty identity", func(t *testing.T, fs *vfs.MemFS) { writeFile(t, fs, "IDENTITY", nil) }, persist.ErrCorrupt},
		{"identity torn in its header", func(t *testing.T, fs *vfs.MemFS) {
			writeFile(t, fs, "IDENTITY", readFile(t, fs, "IDENTITY")[:4])
		}, persist.ErrCorrupt},
		{"another node's directory", func(t *testing.T, fs *vfs.MemFS) {
			other := vfs.NewMem()
			open(t, other, "node2").Close()
			writeFile(t, fs, "IDENTITY", readFile(t, other, "IDENTITY"))
		}, persist.ErrForeign},
		{"not a persist file", func(t *testing.T, fs *vfs.MemFS) {
			writeFile(t, fs, "SEQUENCER", []byte("mark=77\n"))
		}, persist.ErrForeign},
		{"a file of another kind", func(t *testing.T, fs *vfs.MemFS) {
			writeFile(t, fs, "SEQUENCER", readFile(t, fs, "LAYOUT"))
		}, persist.ErrForeign},
		{"a newer version", func(t *testing.T, fs *vfs.MemFS) {
			writeFile(t, fs, "SEQUENCER", reframe(readFile(t, fs, "SEQUENCER"), func(b []byte) { b[6] = persist.Version + 1 }))
		}, persist.ErrVersion},
		{"a version below the oldest", func(t *testing.T, fs *vfs.MemFS) {
			writeFile(t, fs, "SEQUENCER", reframe(readFile(t, fs, "SEQUENCER"), func(b []byte) { b[6] = 0 }))
		}, persist.ErrVersion},
		{"a valid checksum over a state no acceptor restarts from", func(t *testing.T, fs *vfs.MemFS) {
			// The promised rank (the body's second byte) drops to 2,
			// below the rank 3 the acceptor accepted at.
			b := readFile(t, fs, "LAYOUT")
			require.Equal(t, byte(4), b[13])
			writeFile(t, fs, "LAYOUT", reframe(b, func(b []byte) { b[13] = 2 }))
		}, persist.ErrCorrupt},
		{"a valid checksum over a projection that is not one", func(t *testing.T, fs *vfs.MemFS) {
			b := readFile(t, fs, "LAYOUT")
			i := bytes.Index(b, []byte(`"layout":["layout0"]`))
			require.Positive(t, i)
			writeFile(t, fs, "LAYOUT", reframe(b, func(b []byte) { copy(b[i:], `"layout":[         ]`) }))
		}, persist.ErrCorrupt},
		{"missing layout file", func(t *testing.T, fs *vfs.MemFS) {
			require.NoError(t, fs.Remove("/state/LAYOUT"))
		}, persist.ErrMissing},
		{"missing sequencer file", func(t *testing.T, fs *vfs.MemFS) {
			require.NoError(t, fs.Remove("/state/SEQUENCER"))
		}, persist.ErrMissing},
		{"missing identity, state saved", func(t *testing.T, fs *vfs.MemFS) {
			require.NoError(t, fs.Remove("/state/IDENTITY"))
		}, persist.ErrForeign},
		{"an unknown file", func(t *testing.T, fs *vfs.MemFS) { writeFile(t, fs, "segment-0001", []byte("x")) }, persist.ErrForeign},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := setup(t)
			c.harm(t, fs)
			_, err := persist.Open(fs, dir, persist.Options{Node: "node1"})
			require.ErrorIs(t, err, c.want)
			t.Log(err)
			// Refused again: a refusal changes nothing.
			_, err = persist.Open(fs, dir, persist.Options{Node: "node1"})
			require.ErrorIs(t, err, c.want)
		})
	}
}

// TestInitialisationCrash: a crash before the identity file is durable
// leaves a directory that the next Open initialises again.
func TestInitialisationCrash(t *testing.T) {
	for step := 0; step < 40; step++ {
		mem := vfs.NewMem()
		n := 0
		var snap *vfs.MemFS
		fs := &crashFS{FS: mem, before: func(string) {
			if n == step {
				snap = mem.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(step), 2))})
			}
			n++
		}}
		d, err := persist.Open(fs, dir, persist.Options{Node: "seq"})
		require.NoError(t, err)
		d.Close()
		if snap == nil {
			return
		}
		// NB: the cut Open never returned in the crashed world, so its
		// incarnation was never handed out and may come again.
		re, err := persist.Open(snap, dir, persist.Options{Node: "seq"})
		require.NoError(t, err, "step %d", step)
		_, ok := markOf(re)
		assert.False(t, ok)
		_, ok = re.Layout()
		assert.False(t, ok)
		re.Close()
	}
	t.Fatal("Open made more than 40 changes")
}

// failFS fails every Sync once armed.
type failFS struct {
	vfs.FS
	armed *bool
}

func (f failFS) Create(name string) (vfs.File, error) {
	file, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return failFile{File: file, armed: f.armed}, nil
}

type failFile struct {
	vfs.File
	armed *bool
}

func (f failFile) Sync() error {
	if *f.armed {
		return errors.New("injected: no space left on device")
	}
	return f.File.Sync()
}

// TestFailedSaveIsSticky: after a save fails, every later one fails too
// (its host must restart from what is on disk), and the state on disk is
// the old one.
func TestFailedSaveIsSticky(t *testing.T) {
	mem := vfs.NewMem()
	armed := false
	d, err := persist.Open(failFS{FS: mem, armed: &armed}, dir, persist.Options{Node: "seq"})
	require.NoError(t, err)
	require.NoError(t, saveMark(d, 5))
	armed = true
	require.Error(t, saveMark(d, 9))
	armed = false
	require.ErrorIs(t, saveMark(d, 12), persist.ErrClosed)
	mark, _ := markOf(d)
	assert.Equal(t, storage.Address(5), mark, "the failed save's mark is not reported")
	require.NoError(t, d.Close())
	d = open(t, mem, "seq")
	defer d.Close()
	mark, _ = markOf(d)
	assert.Equal(t, storage.Address(5), mark)
}

// TestNewDirectoriesAreDurable: the directories Open creates survive a
// power loss with the state in them.
func TestNewDirectoriesAreDurable(t *testing.T) {
	mem := vfs.NewMem()
	d, err := persist.Open(mem, "/a/b/c", persist.Options{Node: "seq"})
	require.NoError(t, err)
	require.NoError(t, saveMark(d, 42))
	crashed := mem.CrashClone(vfs.CrashOptions{})
	d, err = persist.Open(crashed, "/a/b/c", persist.Options{Node: "seq"})
	require.NoError(t, err)
	defer d.Close()
	mark, ok := markOf(d)
	require.True(t, ok)
	require.Equal(t, storage.Address(42), mark)
}

// TestSequencerStateRestored: the epoch of the sequencer's last bootstrap
// is saved with its mark, each only rises, and a sequencer restarted from
// the directory vouches for its mark at a seal of the epoch after that one
// and no later.
func TestSequencerStateRestored(t *testing.T) {
	fs := vfs.NewMem()
	d := open(t, fs, "node0")
	require.NoError(t, d.SaveSequencer(sequencer.State{Mark: 64, Booted: 3}))
	require.NoError(t, d.SaveSequencer(sequencer.State{Mark: 32, Booted: 5}), "a newer epoch with a lower mark")
	require.NoError(t, d.SaveSequencer(sequencer.State{Mark: 96, Booted: 4}), "a higher mark with an older epoch")
	require.NoError(t, d.Close())

	re := open(t, fs, "node0")
	defer re.Close()
	st, ok := re.Sequencer()
	require.True(t, ok)
	require.Equal(t, sequencer.State{Mark: 96, Booted: 5}, st, "each only rises")
	cfg := re.SequencerConfig(sequencer.Config{Reserve: 8})
	require.Equal(t, sequencer.Config{Reserve: 8, Floor: 96, Booted: 5, Recovered: true, Incarnation: re.Incarnation()}, cfg)
	res, err := sequencer.New(cfg).Seal(6)
	require.NoError(t, err)
	require.False(t, res.NoMark, "it ran epoch 5")
	require.Equal(t, storage.Address(96), res.Tail)
	res, err = sequencer.New(cfg).Seal(7)
	require.NoError(t, err)
	require.True(t, res.NoMark, "epoch 6 may have run elsewhere")
}

// TestReadsVersion1SequencerFile: a sequencer file of format version 1
// holds no bootstrap epoch; it reads as epoch 0, so that a sequencer
// restarted from it vouches for its mark at epoch 1 at most.
func TestReadsVersion1SequencerFile(t *testing.T) {
	fs := vfs.NewMem()
	open(t, fs, "node0").Close()
	inc := func(b []byte) uint64 {
		v, _ := binary.Uvarint(b[12:])
		return v
	}(readFile(t, fs, "SEQUENCER"))
	body := binary.AppendUvarint(nil, inc)
	body = append(body, 1)
	body = binary.AppendUvarint(body, 500)
	b := append([]byte("corfup"), 1, 'S')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	writeFile(t, fs, "SEQUENCER", b)

	d := open(t, fs, "node0")
	st, ok := d.Sequencer()
	require.True(t, ok)
	require.Equal(t, sequencer.State{Mark: 500}, st)
	require.Equal(t, inc+1, d.Incarnation(), "the counter goes on")
	require.NoError(t, d.SaveSequencer(sequencer.State{Mark: 500, Booted: 2}))
	require.NoError(t, d.Close())
	got := readFile(t, fs, "SEQUENCER")
	require.Equal(t, byte(persist.Version), got[6], "saves write the current version")
	d = open(t, fs, "node0")
	defer d.Close()
	st, _ = d.Sequencer()
	require.Equal(t, sequencer.State{Mark: 500, Booted: 2}, st)
}
