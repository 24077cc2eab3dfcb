// Package errorfs wraps a vfs.FS to inject disk faults, modelled on
// cockroachdb/pebble's vfs/errorfs. An Injector looks at every operation and
// may answer it with a Fault: an I/O error, a full disk, a slow operation, a
// corrupt read (a flipped bit), a misdirected write (it lands at another
// offset) or a torn write (only a prefix lands). Misdirected and torn writes
// report success, as a disk that lies does; only a checksum finds them.
//
// The wrapper reads no clock and draws no randomness of its own: a slow
// operation calls the caller's Delay hook, and randomness comes from the
// *rand.Rand an injector is given, so a seeded run is reproducible.
package errorfs

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/corfulog/corfu/storage/vfs"
)

// OpKind names a kind of filesystem operation.
type OpKind uint8

// The kinds of operation an Injector sees, each with the calls it covers.
const (
	OpCreate   OpKind = iota // FS.Create
	OpOpen                   // FS.Open, FS.OpenReadWrite
	OpOpenDir                // FS.OpenDir
	OpRemove                 // FS.Remove, FS.RemoveAll
	OpRename                 // FS.Rename
	OpMkdirAll               // FS.MkdirAll
	OpLock                   // FS.Lock
	OpList                   // FS.List
	OpStat                   // FS.Stat, File.Stat
	OpRead                   // File.Read, File.ReadAt
	OpWrite                  // File.Write, File.WriteAt
	OpSync                   // File.Sync (of a file or a directory)
	OpTruncate               // File.Truncate
	OpClose                  // File.Close
	numOpKinds
)

var opNames = [...]string{"create", "open", "opendir", "remove", "rename", "mkdirall",
	"lock", "list", "stat", "read", "write", "sync", "truncate", "close"}

// String returns the lower-case name of k.
func (k OpKind) String() string {
	if k < numOpKinds {
		return opNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op describes one operation as the injector sees it.
type Op struct {
	Kind OpKind
	// Path is the name the operation was given (for a file's operations,
	// the name it was opened with; for a rename, the old name).
	Path string
	// Offset is where a read or write starts; Len is its length.
	Offset int64
	Len    int
}

// FaultKind names a kind of injected fault.
type FaultKind uint8

const (
	// None lets the operation run normally.
	None FaultKind = iota
	// Error fails the operation, with nothing done, with an error wrapping
	// ErrInjected.
	Error
	// NoSpace fails the operation, with nothing done, with an error
	// wrapping syscall.ENOSPC, as a full disk does.
	NoSpace
	// Delay calls the FS's Delay hook, then runs the operation normally.
	Delay
	// Corrupt flips one bit of the bytes a read returns (Fault.Bit, taken
	// modulo the bits read). Other operations run normally.
	Corrupt
	// Misdirect makes a write land at its offset plus Fault.Shift (at least
	// 0) and report success. Other operations run normally.
	Misdirect
	// Torn makes a write land only its first Fault.Keep bytes (at most its
	// length) and report success. Other operations run normally.
	Torn
)

// String returns the lower-case name of k.
func (k FaultKind) String() string {
	names := [...]string{"none", "error", "nospace", "delay", "corrupt", "misdirect", "torn"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Fault is what an injector answers an operation with.
type Fault struct {
	Kind  FaultKind
	Bit   int   // Corrupt: the bit to flip, modulo the bits read
	Shift int64 // Misdirect: how far from its offset a write lands
	Keep  int   // Torn: how many leading bytes of a write land
}

// ErrInjected is wrapped by the errors of Error faults.
var ErrInjected = errors.New("errorfs: injected error")

// Injector decides the fault, if any, for each operation.
//
// Inject may be called from several goroutines at once.
type Injector interface {
	Inject(op Op) Fault
}

// InjectorFunc adapts a function to an Injector.
type InjectorFunc func(op Op) Fault

// Inject calls f(op).
func (f InjectorFunc) Inject(op Op) Fault { return f(op) }

// Matcher selects the operations an injector applies to.
type Matcher func(op Op) bool

// Ops matches operations of the given kinds.
func Ops(kinds ...OpKind) Matcher {
	var set [numOpKinds]bool
	for _, k := range kinds {
		if k < numOpKinds {
			set[k] = true
		}
	}
	return func(op Op) bool { return op.Kind < numOpKinds && set[op.Kind] }
}

// PathContains matches operations whose path contains s, of the given kinds
// (any kind if none is given).
func PathContains(s string, kinds ...OpKind) Matcher {
	ops := Ops(kinds...)
	return func(op Op) bool {
		return strings.Contains(op.Path, s) && (len(kinds) == 0 || ops(op))
	}
}

// OnIndex returns an injector that answers f to the index-th operation
// (counting from 0) that match selects, and None to every other.
func OnIndex(match Matcher, index int64, f Fault) Injector {
	var n atomic.Int64
	return InjectorFunc(func(op Op) Fault {
		if match(op) && n.Add(1)-1 == index {
			return f
		}
		return Fault{}
	})
}

// WithProbability returns an injector that answers f to each operation that
// match selects with probability p, drawing from rng (which it locks, so
// rng need not be safe for concurrent use; it must not be used elsewhere
// meanwhile).
func WithProbability(rng *rand.Rand, p float64, match Matcher, f Fault) Injector {
	var mu sync.Mutex
	return InjectorFunc(func(op Op) Fault {
		if !match(op) {
			return Fault{}
		}
		mu.Lock()
		hit := rng.Float64() < p
		mu.Unlock()
		if hit {
			return f
		}
		return Fault{}
	})
}

// Any returns an injector that asks each of injs in turn and answers the
// first fault that is not None.
func Any(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) Fault {
		for _, inj := range injs {
			if f := inj.Inject(op); f.Kind != None {
				return f
			}
		}
		return Fault{}
	})
}

// Options configure an FS.
type Options struct {
	// Delay is called, with the operation, for every Delay fault; it may
	// block (the simulator parks the task) or do nothing. A nil Delay makes
	// Delay faults no-ops.
	Delay func(op Op)
}

// FS is a vfs.FS whose operations pass through an Injector. It is safe for
// concurrent use; the injector can be swapped while it is in use.
type FS struct {
	inner vfs.FS
	inj   atomic.Pointer[Injector]
	opts  Options
}

var _ vfs.FS = (*FS)(nil)

// Wrap returns an FS that runs every operation on inner unless inj answers
// it with a fault. A nil inj injects nothing.
func Wrap(inner vfs.FS, inj Injector, opts Options) *FS {
	fs := &FS{inner: inner, opts: opts}
	fs.SetInjector(inj)
	return fs
}

// SetInjector replaces the injector; nil injects nothing.
func (fs *FS) SetInjector(inj Injector) {
	if inj == nil {
		inj = InjectorFunc(func(Op) Fault { return Fault{} })
	}
	fs.inj.Store(&inj)
}

// Inner returns the wrapped FS.
func (fs *FS) Inner() vfs.FS { return fs.inner }

// fault asks the injector about op. For Error, NoSpace and Delay it returns
// the error to fail with (after the delay, nil); the caller handles the
// kinds that change data.
func (fs *FS) fault(op Op) (Fault, error) {
	f := (*fs.inj.Load()).Inject(op)
	switch f.Kind {
	case Error:
		return f, &os.PathError{Op: op.Kind.String(), Path: op.Path, Err: ErrInjected}
	case NoSpace:
		return f, &os.PathError{Op: op.Kind.String(), Path: op.Path, Err: syscall.ENOSPC}
	case Delay:
		if fs.opts.Delay != nil {
			fs.opts.Delay(op)
		}
	}
	return f, nil
}

// check runs the fault stage of an operation that carries no data.
func (fs *FS) check(kind OpKind, path string) error {
	_, err := fs.fault(Op{Kind: kind, Path: path})
	return err
}

// Create implements vfs.FS.
func (fs *FS) Create(name string) (vfs.File, error) {
	if err := fs.check(OpCreate, name); err != nil {
		return nil, err
	}
	return fs.wrapFile(name)(fs.inner.Create(name))
}

// Open implements vfs.FS.
func (fs *FS) Open(name string) (vfs.File, error) {
	if err := fs.check(OpOpen, name); err != nil {
		return nil, err
	}
	return fs.wrapFile(name)(fs.inner.Open(name))
}

// OpenReadWrite implements vfs.FS.
func (fs *FS) OpenReadWrite(name string) (vfs.File, error) {
	if err := fs.check(OpOpen, name); err != nil {
		return nil, err
	}
	return fs.wrapFile(name)(fs.inner.OpenReadWrite(name))
}

// OpenDir implements vfs.FS.
func (fs *FS) OpenDir(name string) (vfs.File, error) {
	if err := fs.check(OpOpenDir, name); err != nil {
		return nil, err
	}
	return fs.wrapFile(name)(fs.inner.OpenDir(name))
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	if err := fs.check(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.Remove(name)
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	if err := fs.check(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.RemoveAll(name)
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	if err := fs.check(OpRename, oldname); err != nil {
		return err
	}
	return fs.inner.Rename(oldname, newname)
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	if err := fs.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return fs.inner.MkdirAll(dir, perm)
}

// Lock implements vfs.FS.
func (fs *FS) Lock(name string) (io.Closer, error) {
	if err := fs.check(OpLock, name); err != nil {
		return nil, err
	}
	return fs.inner.Lock(name)
}

// List implements vfs.FS.
func (fs *FS) List(dir string) ([]string, error) {
	if err := fs.check(OpList, dir); err != nil {
		return nil, err
	}
	return fs.inner.List(dir)
}

// Stat implements vfs.FS.
func (fs *FS) Stat(name string) (os.FileInfo, error) {
	if err := fs.check(OpStat, name); err != nil {
		return nil, err
	}
	return fs.inner.Stat(name)
}

// PathJoin implements vfs.FS.
func (fs *FS) PathJoin(elem ...string) string { return fs.inner.PathJoin(elem...) }

// PathBase implements vfs.FS.
func (fs *FS) PathBase(path string) string { return fs.inner.PathBase(path) }

// PathDir implements vfs.FS.
func (fs *FS) PathDir(path string) string { return fs.inner.PathDir(path) }

func (fs *FS) wrapFile(name string) func(vfs.File, error) (vfs.File, error) {
	return func(f vfs.File, err error) (vfs.File, error) {
		if err != nil {
			return nil, err
		}
		return &file{fs: fs, inner: f, name: name}, nil
	}
}

// file passes a vfs.File's operations through the injector. It keeps its
// own offset for Read and Write and runs them as ReadAt and WriteAt, so
// that a misdirected or torn write can be placed exactly.
type file struct {
	fs    *FS
	inner vfs.File
	name  string
	mu    sync.Mutex // guards pos
	pos   int64
}

func (f *file) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	flt, err := f.fs.fault(Op{Kind: OpRead, Path: f.name, Offset: off, Len: len(p)})
	if err != nil {
		return 0, err
	}
	n, err := f.inner.ReadAt(p, off)
	if flt.Kind == Corrupt && n > 0 {
		bit := flt.Bit % (8 * n)
		if bit < 0 {
			bit += 8 * n
		}
		p[bit/8] ^= 1 << (bit % 8)
	}
	return n, err
}

func (f *file) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.WriteAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	flt, err := f.fs.fault(Op{Kind: OpWrite, Path: f.name, Offset: off, Len: len(p)})
	if err != nil {
		return 0, err
	}
	switch flt.Kind {
	case Misdirect:
		if _, err := f.inner.WriteAt(p, max(0, off+flt.Shift)); err != nil {
			return 0, err
		}
		return len(p), nil
	case Torn:
		keep := min(max(flt.Keep, 0), len(p))
		if _, err := f.inner.WriteAt(p[:keep], off); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return f.inner.WriteAt(p, off)
}

func (f *file) Sync() error {
	if _, err := f.fs.fault(Op{Kind: OpSync, Path: f.name}); err != nil {
		return err
	}
	return f.inner.Sync()
}

// SyncData implements vfs.DataSyncer; the injector sees it as OpSync.
func (f *file) SyncData() error {
	if _, err := f.fs.fault(Op{Kind: OpSync, Path: f.name}); err != nil {
		return err
	}
	return vfs.SyncData(f.inner)
}

func (f *file) Stat() (os.FileInfo, error) {
	if _, err := f.fs.fault(Op{Kind: OpStat, Path: f.name}); err != nil {
		return nil, err
	}
	return f.inner.Stat()
}

func (f *file) Truncate(size int64) error {
	if _, err := f.fs.fault(Op{Kind: OpTruncate, Path: f.name, Offset: size}); err != nil {
		return err
	}
	return f.inner.Truncate(size)
}

func (f *file) Close() error {
	if _, err := f.fs.fault(Op{Kind: OpClose, Path: f.name}); err != nil {
		_ = f.inner.Close() // the handle is gone either way
		return err
	}
	return f.inner.Close()
}
