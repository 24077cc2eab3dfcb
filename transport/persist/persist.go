// Package persist keeps the durable state of a node's sequencer and layout
// server in a directory: the sequencer's reservation mark and the epoch of
// its last bootstrap, the layout server's acceptor state (its latest
// committed projection, its promise and its accepted value), and a counter
// of the sequencer's starts. A *Dir is the transport.Persister a durable
// host gives its transport.Server, and what it restarts the roles from.
//
// Every save writes a temporary file, syncs it, renames it over the old
// file and syncs the directory before it returns, so a power loss at any
// moment leaves either the old state or the new one, never a mix; each file
// is versioned and checksummed (CRC32C), so a torn or damaged file is
// recognised.
//
// Open refuses a directory it cannot trust, with an error saying why: a
// damaged file (ErrCorrupt), one of an unknown version (ErrVersion), a
// directory of another node or holding files that are not this package's
// (ErrForeign), or a state file missing from a directory that was
// initialised (ErrMissing). Only a directory that was never initialised
// starts empty.
//
// # Format (version 2)
//
// A directory holds IDENTITY (the node it belongs to), SEQUENCER (the
// incarnation counter, the reservation mark and the epoch of the last
// bootstrap), LAYOUT (the acceptor state) and LOCK (empty; held while a
// Dir is open). A file ending in .tmp is a save a crash cut short, and Open
// removes it. Each state file is
//
//	magic    6 bytes  "corfup"
//	version  1 byte   2 (1 is read too)
//	kind     1 byte   'I', 'S' or 'L'
//	length   4 bytes  little-endian length of the body
//	body     length bytes
//	crc      4 bytes  little-endian CRC32C (Castagnoli) of all the above
//
// and its body, in unsigned varints (uv) and bytes:
//
//	IDENTITY   uv len, the node's name (len bytes)
//	SEQUENCER  uv incarnation, byte 0 (no state) | byte 1, uv mark,
//	           uv epoch of the last bootstrap (version 1: no epoch)
//	LAYOUT     byte 0 (no state) | byte 1, uv promised rank, uv accepted
//	           rank, then the latest committed and the accepted projection,
//	           each as uv len and its JSON (len 0: none)
//
// A file's body must be exactly its length, and a state must be one the
// role can restart from (projection.RestoreAcceptor); anything else is
// ErrCorrupt.
package persist

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport"
)

var (
	// ErrCorrupt reports a state file that is torn, fails its checksum,
	// or holds a state no role can restart from.
	ErrCorrupt = errors.New("persist: corrupt state file")
	// ErrVersion reports a state file of a format version this build does
	// not read.
	ErrVersion = errors.New("persist: unknown format version")
	// ErrForeign reports a directory that is not this node's: it belongs
	// to another node, or holds files this package did not write.
	ErrForeign = errors.New("persist: not this node's state directory")
	// ErrMissing reports a state file missing from an initialised
	// directory: its state was lost, and starting empty could break a
	// promise or hand out an address again.
	ErrMissing = errors.New("persist: state file missing")
	// ErrClosed reports a save to a closed Dir, or to one whose earlier
	// save failed: its host must restart from what was saved.
	ErrClosed = errors.New("persist: directory closed")
)

// The files of a directory.
const (
	identityFile  = "IDENTITY"
	sequencerFile = "SEQUENCER"
	layoutFile    = "LAYOUT"
	lockFile      = "LOCK"
	tmpSuffix     = ".tmp"
)

// Options configure Open.
type Options struct {
	// Node is the identity of the node the directory belongs to. The first
	// Open records it; later ones refuse a directory recorded for another
	// node (ErrForeign). It must not be empty, nor longer than
	// MaxNodeBytes.
	Node string
	// Entropy, if not nil, is read when a directory is initialised for the
	// random start of its incarnation counter; nil means crypto/rand. (A
	// simulation passes a seeded source, to replay.)
	Entropy io.Reader
}

// Dir is a node's durable role state in one directory of a vfs.FS. It
// implements transport.Persister.
//
// A Dir is safe for concurrent use: saves are serialised, and each returns
// only once what it saved is durable.
type Dir struct {
	fs   vfs.FS
	dir  string
	node string
	lock io.Closer

	mu     sync.Mutex
	seq    seqState
	layout layoutState
	err    error // sticky: set by Close or a failed save
}

var _ transport.Persister = (*Dir)(nil)

// Open opens the state directory dir on fsys for the node opts.Node,
// creating and initialising it if it does not exist or is empty, and
// takes its lock. Every Open counts a start of the node's sequencer: it
// makes the next incarnation durable before it returns (see Incarnation).
// It removes the temporary files a crash may have left.
//
// Open returns an error wrapping ErrCorrupt, ErrVersion, ErrForeign or
// ErrMissing for a directory it cannot trust (see the package doc), the
// lock's error if another Dir holds the directory, and the filesystem's
// error if it cannot read or write it.
func Open(fsys vfs.FS, dir string, opts Options) (*Dir, error) {
	if opts.Node == "" || len(opts.Node) > MaxNodeBytes {
		return nil, fmt.Errorf("persist: open %s: node identity of %d bytes, want 1 to %d", dir, len(opts.Node), MaxNodeBytes)
	}
	if err := mkdirDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", dir, err)
	}
	lock, err := fsys.Lock(fsys.PathJoin(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", dir, err)
	}
	d := &Dir{fs: fsys, dir: dir, node: opts.Node, lock: lock}
	if err := d.load(opts); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("persist: open %s: %w", dir, err)
	}
	return d, nil
}

// load reads (or initialises) the directory's state and counts this start.
func (d *Dir) load(opts Options) error {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return err
	}
	have := map[string]bool{} // looked up, never iterated
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			// NB: a save that crashed before its rename; the file it
			// meant to replace still holds the state.
			if err := d.fs.Remove(d.fs.PathJoin(d.dir, name)); err != nil {
				return err
			}
		case name == lockFile:
		case name == identityFile || name == sequencerFile || name == layoutFile:
			have[name] = true
		default:
			return fmt.Errorf("%w: unknown file %s", ErrForeign, name)
		}
	}
	if !have[identityFile] {
		if err := d.initialise(have, opts); err != nil {
			return err
		}
	} else {
		b, err := d.read(identityFile)
		if err != nil {
			return err
		}
		id, err := decodeIdentity(b)
		if err != nil {
			return fmt.Errorf("%s: %w", identityFile, err)
		}
		if id.node != d.node {
			return fmt.Errorf("%w: the directory of node %q, not %q", ErrForeign, id.node, d.node)
		}
		for _, name := range []string{sequencerFile, layoutFile} {
			if !have[name] {
				return fmt.Errorf("%w: %s", ErrMissing, name)
			}
		}
	}
	if err := d.loadState(); err != nil {
		return err
	}
	if d.seq.incarnation >= MaxIncarnation {
		return fmt.Errorf("%w: incarnations exhausted", ErrCorrupt)
	}
	next := d.seq
	next.incarnation++
	// NB: durable before Open returns, so no start reuses an incarnation.
	if err := d.write(sequencerFile, next.encode()); err != nil {
		return err
	}
	d.seq = next
	return nil
}

// initialise writes the state of a directory that holds nothing yet, its
// identity last: until the identity file is durable, the directory counts
// as never initialised, and a crash in between leaves only state files
// that say nothing was saved, which the next Open writes again. Any other
// state without an identity is refused.
func (d *Dir) initialise(have map[string]bool, opts Options) error {
	if have[sequencerFile] {
		b, err := d.read(sequencerFile)
		if err != nil {
			return err
		}
		if s, err := decodeSeqState(b); err != nil || s.hasMark {
			return fmt.Errorf("%w: %s holds a saved state, but %s is missing", ErrForeign, sequencerFile, identityFile)
		}
	}
	if have[layoutFile] {
		b, err := d.read(layoutFile)
		if err != nil {
			return err
		}
		if l, err := decodeLayoutState(b); err != nil || l.has {
			return fmt.Errorf("%w: %s holds a saved state, but %s is missing", ErrForeign, layoutFile, identityFile)
		}
	}
	src := opts.Entropy
	if src == nil {
		src = rand.Reader
	}
	var r [8]byte
	if _, err := io.ReadFull(src, r[:]); err != nil {
		return fmt.Errorf("persist: draw an incarnation: %w", err)
	}
	// NB: a random start, so that a node whose directory was lost and
	// made anew does not hand out its old incarnations again; far below
	// MaxIncarnation, so that the counter never runs out.
	base := binary.LittleEndian.Uint64(r[:]) % (1 << 60)
	empty, err := layoutState{}.encode()
	if err != nil {
		return err
	}
	if err := d.write(sequencerFile, seqState{incarnation: base}.encode()); err != nil {
		return err
	}
	if err := d.write(layoutFile, empty); err != nil {
		return err
	}
	return d.write(identityFile, identity{node: d.node}.encode())
}

// mkdirDurable creates dir and its missing parents, and syncs the parent
// of each directory it created, so that the new entries survive a power
// loss.
func mkdirDurable(fsys vfs.FS, dir string) error {
	var created []string // deepest first
	for p := dir; ; p = fsys.PathDir(p) {
		if _, err := fsys.Stat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, p)
		if fsys.PathDir(p) == p {
			break
		}
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// NB: the deepest first, so each parent's sync finds its child
	// complete; the top one's parent existed before.
	for _, p := range created {
		if err := vfs.SyncDir(fsys, fsys.PathDir(p)); err != nil {
			return err
		}
	}
	return nil
}

// loadState reads the sequencer and layout files.
func (d *Dir) loadState() error {
	b, err := d.read(sequencerFile)
	if err != nil {
		return err
	}
	if d.seq, err = decodeSeqState(b); err != nil {
		return fmt.Errorf("%s: %w", sequencerFile, err)
	}
	if b, err = d.read(layoutFile); err != nil {
		return err
	}
	if d.layout, err = decodeLayoutState(b); err != nil {
		return fmt.Errorf("%s: %w", layoutFile, err)
	}
	return nil
}

// read returns the contents of the directory's file name, up to
// MaxFileBytes+1 bytes (enough for the decoder to refuse a larger one).
func (d *Dir) read(name string) ([]byte, error) {
	f, err := d.fs.Open(d.fs.PathJoin(d.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrMissing, name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// write replaces the directory's file name with b, durably: a temporary
// file, written and synced, renamed over name, then the directory synced.
func (d *Dir) write(name string, b []byte) (err error) {
	path := d.fs.PathJoin(d.dir, name)
	tmp := path + tmpSuffix
	defer func() {
		if err != nil {
			_ = d.fs.Remove(tmp) // best effort; Open removes it otherwise
			err = fmt.Errorf("persist: save %s: %w", name, err)
		}
	}()
	return vfs.ReplaceFile(d.fs, d.dir, name, name+tmpSuffix, b)
}

// Node returns the node the directory belongs to.
func (d *Dir) Node() string { return d.node }

// Incarnation returns the number of this start of the node's sequencer,
// for sequencer.Config.Incarnation: every Open of the directory takes a
// new one, durably, so no two starts share one, even across crashes. It is
// at least 1 and at most MaxIncarnation.
func (d *Dir) Incarnation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq.incarnation
}

// Sequencer returns the sequencer's last saved state, and false if none was
// ever saved. A host restarts its sequencer with its Mark as
// sequencer.Config.Floor and its Booted as Config.Booted, with
// Config.Recovered set if it was saved (SequencerConfig does).
func (d *Dir) Sequencer() (sequencer.State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq.st, d.seq.hasMark
}

// SequencerConfig returns cfg with what a sequencer restarted from the
// directory needs: its saved state (Floor, Booted and Recovered, if one was
// saved) and the incarnation of this start.
func (d *Dir) SequencerConfig(cfg sequencer.Config) sequencer.Config {
	st, saved := d.Sequencer()
	cfg.Floor, cfg.Booted, cfg.Recovered = st.Mark, st.Booted, saved
	cfg.Incarnation = d.Incarnation()
	return cfg
}

// Layout returns the layout server's last saved acceptor state (a copy),
// and false if none was ever saved. A host restarts its acceptor with
// projection.RestoreAcceptor from it.
func (d *Dir) Layout() (projection.AcceptorState, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.layout.st
	return projection.AcceptorState{Latest: st.Latest.Clone(), Promised: st.Promised,
		AcceptedRank: st.AcceptedRank, Accepted: st.Accepted.Clone()}, d.layout.has
}

// SaveSequencer saves the sequencer's state (its reservation mark and the
// epoch of its last bootstrap) durably and returns once it is. Both only
// rise: a mark below the saved one keeps the saved one (no address at or
// above either was handed out), and so does an older epoch. It returns
// ErrClosed after Close or after a failed save, and the filesystem's error
// if the save fails.
func (d *Dir) SaveSequencer(st sequencer.State) error {
	if st.Mark >= storage.MaxAddress {
		return fmt.Errorf("persist: save mark %d: at or above storage.MaxAddress", st.Mark)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seq.hasMark {
		st.Mark, st.Booted = max(st.Mark, d.seq.st.Mark), max(st.Booted, d.seq.st.Booted)
		if st == d.seq.st {
			return d.err
		}
	}
	next := d.seq
	next.hasMark, next.st = true, st
	return d.save(sequencerFile, next.encode(), func() { d.seq = next })
}

// SaveLayout saves the layout server's acceptor state durably and returns
// once it is. It returns an error wrapping projection.ErrInvalid for a
// state projection.RestoreAcceptor refuses (nothing is saved), ErrClosed
// after Close or after a failed save, and the filesystem's error if the
// save fails.
func (d *Dir) SaveLayout(st projection.AcceptorState) error {
	if _, err := projection.RestoreAcceptor(st); err != nil {
		return fmt.Errorf("persist: save layout: %w", err)
	}
	next := layoutState{has: true, st: projection.AcceptorState{Latest: st.Latest.Clone(), Promised: st.Promised,
		AcceptedRank: st.AcceptedRank, Accepted: st.Accepted.Clone()}}
	b, err := next.encode()
	if err != nil {
		return fmt.Errorf("persist: save layout: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.save(layoutFile, b, func() { d.layout = next })
}

// save writes file name and, once it is durable, applies the new state.
// d.mu is held.
func (d *Dir) save(name string, b []byte, apply func()) error {
	if d.err != nil {
		return d.err
	}
	if err := d.write(name, b); err != nil {
		// NB: sticky: the file may hold the old state or the new one, and
		// the host must restart from whichever it is.
		d.err = fmt.Errorf("%w: an earlier save failed: %v", ErrClosed, err)
		return err
	}
	apply()
	return nil
}

// Close releases the directory's lock. Later saves return ErrClosed. It
// returns the lock's error, if any.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return nil
	}
	d.err = ErrClosed
	err := d.lock.Close()
	d.lock = nil
	return err
}

// ForSequencer returns the Persister for a transport.Server whose
// sequencer is seq() (read at every save, since a host may replace it): d,
// except that a mark saved while the sequencer has no mark to vouch for
// (sequencer.NoMark: it started without one and has not been bootstrapped
// since) is not written. Such a sequencer hands out nothing, and its mark
// says nothing of what the log's earlier sequencers handed out; saved, it
// would restart as Recovered and its seal would vouch for a tail it does
// not know. Once bootstrapped, its marks are saved as d saves them.
func (d *Dir) ForSequencer(seq func() *sequencer.Sequencer) transport.Persister {
	return vouched{Dir: d, seq: seq}
}

// vouched is the Persister of ForSequencer.
type vouched struct {
	*Dir
	seq func() *sequencer.Sequencer
}

// SaveSequencer saves st unless the sequencer has no mark to vouch for.
func (v vouched) SaveSequencer(st sequencer.State) error {
	if s := v.seq(); s != nil && s.NoMark() {
		return nil
	}
	return v.Dir.SaveSequencer(st)
}
