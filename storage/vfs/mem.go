package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemFS is an in-memory FS that models power loss. Every file keeps two
// versions of its bytes: what reads see, and what a power loss would keep
// (the bytes as of its last Sync). Every directory keeps two sets of
// entries likewise: a create, rename or remove is durable only once the
// directory itself is synced (through OpenDir and File.Sync), as on a
// POSIX filesystem that promises no more than fsync does. CrashClone
// returns the filesystem a power loss would leave.
//
// The root directory "/" always exists; relative names are taken from the
// root. Names are cleaned with path.Clean. MemFS reads no clock: every
// file's modification time is the zero time.
//
// MemFS is safe for concurrent use by multiple goroutines; all operations
// are serialised by one mutex. Create it with NewMem.
type MemFS struct {
	mu    sync.Mutex
	root  *memNode
	locks map[string]bool // names locked through Lock
}

var _ FS = (*MemFS)(nil)

// memNode is a file or a directory. A node is shared by every handle open
// on it and by the directory maps that name it, so a removed file stays
// readable through a handle opened before, as on unix.
type memNode struct {
	dir bool

	// Files: data is what reads see; synced is what a power loss keeps.
	// dirtyFrom is the lowest offset changed since the last sync (len(data)
	// when nothing changed), so a sync copies only what changed.
	data      []byte
	synced    []byte
	dirtyFrom int

	// Directories: children are the entries reads see; syncedChildren the
	// entries a power loss keeps.
	children       map[string]*memNode
	syncedChildren map[string]*memNode
}

func newDirNode() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, syncedChildren: map[string]*memNode{}}
}

// NewMem returns an empty MemFS holding only the root directory, which is
// durable.
func NewMem() *MemFS {
	return &MemFS{root: newDirNode(), locks: map[string]bool{}}
}

// CrashOptions say how CrashClone models a power loss.
type CrashOptions struct {
	// Rand, if not nil, tears the tail of every file that has unsynced
	// changes: a random prefix (possibly empty, possibly all) of its
	// unsynced bytes, taken in file order from the first changed offset,
	// survives, as when the disk wrote some sectors of a write in flight
	// before the power went. Files are visited in sorted path order, so a
	// seeded Rand gives the same result every time. If Rand is nil every
	// unsynced byte is lost.
	Rand *rand.Rand
	// BlockSize, if positive (and Rand is set), models a disk that writes
	// back unsynced data in no particular order: the surviving length is
	// drawn as above, and then each BlockSize-aligned block of the
	// unsynced bytes below it survives or not on its own (a block that
	// does not keeps its synced bytes, or zeros past the synced end).
	BlockSize int
}

// CrashClone returns a new MemFS holding what a power loss would leave of
// m: every directory with its synced entries, every file with its synced
// bytes (plus a torn tail, per opts). m itself is unchanged and stays
// usable; handles open on it do not reach the clone. Locks are not carried
// over: the processes that held them died with the power.
func (m *MemFS) CrashClone(opts CrashOptions) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[*memNode]*memNode{}
	return &MemFS{root: crashDir(m.root, opts, seen), locks: map[string]bool{}}
}

// crashDir clones the synced state of directory n. seen keeps a node that
// two durable entries name (a rename whose source directory was synced
// before the rename and whose target was synced after) one node.
func crashDir(n *memNode, opts CrashOptions, seen map[*memNode]*memNode) *memNode {
	if c, ok := seen[n]; ok {
		return c
	}
	c := newDirNode()
	seen[n] = c
	for _, name := range sortedNames(n.syncedChildren) {
		child := n.syncedChildren[name]
		var cc *memNode
		if child.dir {
			cc = crashDir(child, opts, seen)
		} else {
			cc = crashFile(child, opts, seen)
		}
		c.children[name] = cc
		c.syncedChildren[name] = cc
	}
	return c
}

// crashFile clones the synced bytes of file n, with a torn tail per opts.
func crashFile(n *memNode, opts CrashOptions, seen map[*memNode]*memNode) *memNode {
	if c, ok := seen[n]; ok {
		return c
	}
	kept := slices.Clone(n.synced)
	if rng := opts.Rand; rng != nil && n.dirtyFrom < len(n.data) {
		from := n.dirtyFrom
		land := rng.IntN(len(n.data) - from + 1)
		kept = tear(n.synced, n.data, from, land, opts.BlockSize, rng)
	}
	if kept == nil {
		kept = []byte{}
	}
	c := &memNode{data: kept, synced: slices.Clone(kept), dirtyFrom: len(kept)}
	seen[n] = c
	return c
}

// tear returns synced with data[from:from+land] written over it: the first
// land unsynced bytes reached the disk. With a positive block size, each
// block of them reached it or not, as rng draws.
func tear(synced, data []byte, from, land, block int, rng *rand.Rand) []byte {
	end := from + land
	out := make([]byte, max(len(synced), end))
	copy(out, synced)
	if block <= 0 {
		copy(out[from:end], data[from:end])
		return out
	}
	for b := from / block * block; b < end; b += block {
		lo, hi := max(b, from), min(b+block, end)
		if rng.IntN(2) == 0 {
			copy(out[lo:hi], data[lo:hi])
		}
	}
	return out
}

func sortedNames(m map[string]*memNode) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// split cleans name and returns its parent directory's path and its base.
func split(name string) (dir, base string) {
	p := clean(name)
	return path.Dir(p), path.Base(p)
}

func clean(name string) string {
	return path.Clean("/" + name)
}

// walk returns the node at p (cleaned), or an error wrapping fs.ErrNotExist.
// The caller holds mu.
func (m *MemFS) walk(op, p string) (*memNode, error) {
	n := m.root
	for _, elem := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if elem == "" {
			continue
		}
		if !n.dir {
			return nil, &os.PathError{Op: op, Path: p, Err: errors.New("not a directory")}
		}
		child, ok := n.children[elem]
		if !ok {
			return nil, &os.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
		}
		n = child
	}
	return n, nil
}

// parent returns the directory that holds name and name's base. The caller
// holds mu.
func (m *MemFS) parent(op, name string) (*memNode, string, error) {
	dir, base := split(name)
	if base == "/" {
		return nil, "", &os.PathError{Op: op, Path: name, Err: errors.New("is the root")}
	}
	d, err := m.walk(op, dir)
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &os.PathError{Op: op, Path: name, Err: errors.New("parent is not a directory")}
	}
	return d, base, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent("create", name)
	if err != nil {
		return nil, err
	}
	n, ok := d.children[base]
	switch {
	case ok && n.dir:
		return nil, &os.PathError{Op: "create", Path: name, Err: errors.New("is a directory")}
	case ok:
		n.truncate(0)
	default:
		n = &memNode{data: []byte{}}
		d.children[base] = n
	}
	return &memFile{fs: m, n: n, name: clean(name), write: true}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	return m.open("open", name, false)
}

// OpenDir implements FS.
func (m *MemFS) OpenDir(name string) (File, error) {
	f, err := m.open("open", name, false)
	if err != nil {
		return nil, err
	}
	if !f.(*memFile).n.dir {
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("not a directory")}
	}
	return f, nil
}

func (m *MemFS) open(op, name string, write bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.walk(op, clean(name))
	if err != nil {
		return nil, err
	}
	if write && n.dir {
		return nil, &os.PathError{Op: op, Path: name, Err: errors.New("is a directory")}
	}
	return &memFile{fs: m, n: n, name: clean(name), write: write}, nil
}

// OpenReadWrite implements FS.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	m.mu.Lock()
	_, err := m.walk("open", clean(name))
	m.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return m.Create(name)
	}
	return m.open("open", name, true)
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent("remove", name)
	if err != nil {
		return err
	}
	n, ok := d.children[base]
	switch {
	case !ok:
		return &os.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	case n.dir && len(n.children) > 0:
		return &os.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
	}
	delete(d.children, base)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent("removeall", name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	delete(d.children, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, obase, err := m.parent("rename", oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := m.parent("rename", newname)
	if err != nil {
		return err
	}
	n, ok := od.children[obase]
	if !ok {
		return &os.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if old, ok := nd.children[nbase]; ok && old.dir != n.dir {
		return &os.PathError{Op: "rename", Path: newname, Err: errors.New("file type mismatch")}
	}
	delete(od.children, obase)
	nd.children[nbase] = n
	return nil
}

// MkdirAll implements FS. perm is ignored.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, elem := range strings.Split(strings.TrimPrefix(clean(dir), "/"), "/") {
		if elem == "" {
			continue
		}
		child, ok := n.children[elem]
		switch {
		case !ok:
			child = newDirNode()
			n.children[elem] = child
		case !child.dir:
			return &os.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		n = child
	}
	return nil
}

// Lock implements FS. The lock lives in the MemFS: a second Lock of the
// same name fails until the first is closed.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	f, err := m.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(name)
	if m.locks[p] {
		return nil, fmt.Errorf("vfs: lock %s: held", p)
	}
	m.locks[p] = true
	return &memLock{fs: m, name: p}, nil
}

type memLock struct {
	fs   *MemFS
	name string
	once sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locks, l.name)
		l.fs.mu.Unlock()
	})
	return nil
}

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.walk("list", clean(dir))
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &os.PathError{Op: "list", Path: dir, Err: errors.New("not a directory")}
	}
	return sortedNames(n.children), nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(name)
	n, err := m.walk("stat", p)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base(p)), nil
}

// PathJoin implements FS.
func (*MemFS) PathJoin(elem ...string) string { return path.Join(elem...) }

// PathBase implements FS.
func (*MemFS) PathBase(p string) string { return path.Base(p) }

// PathDir implements FS.
func (*MemFS) PathDir(p string) string { return path.Dir(p) }

// truncate sets the file's size. The caller holds mu.
func (n *memNode) truncate(size int) {
	if size <= len(n.data) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, size-len(n.data))...)
	}
	n.dirtyFrom = min(n.dirtyFrom, size)
}

// writeAt writes p at off, growing the file as need be. The caller holds mu.
func (n *memNode) writeAt(p []byte, off int) {
	if end := off + len(p); end > len(n.data) {
		n.truncate(end) // sets dirtyFrom no higher than the old size
	}
	copy(n.data[off:], p)
	n.dirtyFrom = min(n.dirtyFrom, off)
}

// sync makes the node's current state its durable one. The caller holds mu.
func (n *memNode) sync() {
	if n.dir {
		n.syncedChildren = make(map[string]*memNode, len(n.children))
		for name, c := range n.children {
			n.syncedChildren[name] = c
		}
		return
	}
	from := min(n.dirtyFrom, len(n.synced))
	n.synced = append(n.synced[:from], n.data[from:]...)
	n.dirtyFrom = len(n.data)
}

func (n *memNode) info(name string) os.FileInfo {
	mode := os.FileMode(0o644)
	if n.dir {
		mode = os.ModeDir | 0o755
	}
	return memInfo{name: name, size: int64(len(n.data)), mode: mode}
}

type memInfo struct {
	name string
	size int64
	mode os.FileMode
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() os.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

// memFile is a handle on a memNode.
type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	write  bool
	pos    int // offset of Read and Write
	closed bool
}

var errClosed = errors.New("vfs: file already closed")

// check returns the error for an operation on f; the caller holds mu.
func (f *memFile) check(op string, write bool) error {
	switch {
	case f.closed:
		return &os.PathError{Op: op, Path: f.name, Err: errClosed}
	case f.n.dir && op != "sync" && op != "stat" && op != "close":
		return &os.PathError{Op: op, Path: f.name, Err: errors.New("is a directory")}
	case write && !f.write:
		return &os.PathError{Op: op, Path: f.name, Err: errors.New("file opened read-only")}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= len(f.n.data) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += k
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.n.writeAt(p, f.pos)
	f.pos += len(p)
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "writeat", Path: f.name, Err: errors.New("negative offset")}
	}
	f.n.writeAt(p, int(off))
	return len(p), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &os.PathError{Op: "truncate", Path: f.name, Err: errors.New("negative size")}
	}
	f.n.truncate(int(size))
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	f.n.sync()
	return nil
}

// SyncData implements DataSyncer: in a MemFS it is Sync, since a file's
// size is part of its data here.
func (f *memFile) SyncData() error { return f.Sync() }

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(f.name)), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: errClosed}
	}
	f.closed = true
	return nil
}
