// Package vfs is the small filesystem interface the durable storage unit
// reaches the disk through, modelled on cockroachdb/pebble's vfs package.
//
// Default is the operating system's filesystem. NewMem returns an in-memory
// filesystem that models power loss: a file's bytes survive a crash only once
// the file is synced, and a directory entry (a create, rename or remove) only
// once its directory is synced. Package errorfs wraps any FS to inject disk
// faults (errors, a full disk, slow operations, corrupt reads, misdirected
// and torn writes) beneath the very code that runs in production.
//
// Paths are slash- or OS-separated as the FS's PathJoin makes them; code that
// runs on any FS builds paths with PathJoin, PathBase and PathDir only.
package vfs

import (
	"fmt"
	"io"
	"os"
)

// File is an open file or directory of an FS.
//
// A File is not safe for concurrent use, except that ReadAt, WriteAt, Stat
// and Sync may be called concurrently with one another (as with *os.File).
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's contents durable: after it returns, a power loss
	// keeps every byte written before the call. On a directory it makes the
	// directory's entries (creates, renames and removes of its children)
	// durable.
	Sync() error
	// Stat returns the file's metadata.
	Stat() (os.FileInfo, error)
	// Truncate changes the file's size. Like a write, it is durable only
	// once the file is synced.
	Truncate(size int64) error
}

// FS is a hierarchical filesystem.
//
// An FS is safe for concurrent use by multiple goroutines.
type FS interface {
	// Create creates the named file for reading and writing, truncating it
	// if it exists. Its directory entry is durable only once the directory
	// is synced.
	Create(name string) (File, error)
	// Open opens the named file for reading.
	Open(name string) (File, error)
	// OpenReadWrite opens the named file for reading and writing, creating
	// it if it does not exist. Writes start at offset 0; use WriteAt to
	// append at a known size.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens the named directory, so that it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes the named file or empty directory. The removal is
	// durable only once the parent directory is synced.
	Remove(name string) error
	// RemoveAll removes name and everything below it. It returns nil if
	// name does not exist.
	RemoveAll(name string) error
	// Rename moves oldname to newname, replacing newname if it exists. The
	// rename is durable only once the directories involved are synced.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and every missing parent. A new directory's entry
	// is durable only once its parent is synced.
	MkdirAll(dir string, perm os.FileMode) error
	// Lock takes an exclusive lock on the named file, creating it if need
	// be, so that two processes (or two opens in one process) never serve
	// the same directory. Closing the returned Closer releases it. It
	// returns an error if the lock is held.
	Lock(name string) (io.Closer, error)
	// List returns the names of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat returns the metadata of the named file.
	Stat(name string) (os.FileInfo, error)
	// PathJoin joins path elements with the FS's separator.
	PathJoin(elem ...string) string
	// PathBase returns the last element of path.
	PathBase(path string) string
	// PathDir returns all but the last element of path.
	PathDir(path string) string
}

// DataSyncer is implemented by files that can sync their data without the
// metadata that reading the data back does not need (fdatasync(2)): the
// modification time, but never the size. Durable logs that only append use
// it through SyncData.
type DataSyncer interface {
	SyncData() error
}

// SyncData makes f's contents durable like f.Sync, through the cheaper
// SyncData if f implements DataSyncer.
func SyncData(f File) error {
	if d, ok := f.(DataSyncer); ok {
		return d.SyncData()
	}
	return f.Sync()
}

// OverwritePreferrer is implemented by file systems on which syncing a
// write over bytes already written and synced is much cheaper than syncing
// an append: on ext4 and XFS fdatasync(2) of an append also commits the
// file's new size and block allocation to the journal, while fdatasync of
// an overwrite only flushes the data. Logs that sync every batch write
// their files ahead (with zeros) there; see PrefersOverwrite.
type OverwritePreferrer interface {
	PrefersOverwrite() bool
}

// PrefersOverwrite reports whether fs says that syncing overwrites is
// cheaper than syncing appends (see OverwritePreferrer). Default does; MemFS
// and wrappers that do not pass the method on do not.
func PrefersOverwrite(fs FS) bool {
	p, ok := fs.(OverwritePreferrer)
	return ok && p.PrefersOverwrite()
}

// SyncDir opens dir on fs, syncs it and closes it, making the creates,
// renames and removes of its entries durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// WriteSynced creates name (replacing what was there) holding b, and syncs
// it before it returns.
func WriteSynced(fs FS, name string, b []byte) error {
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// ReplaceFile replaces the file name in dir with b durably: it writes the
// temporary file tmp (in dir too) and syncs it, renames it over name and
// syncs dir, so that a power loss at any moment leaves the old contents or
// the new ones, never a mix. tmp is left behind if a step fails.
func ReplaceFile(fs FS, dir, name, tmp string, b []byte) error {
	tmpPath := fs.PathJoin(dir, tmp)
	if err := WriteSynced(fs, tmpPath, b); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := fs.Rename(tmpPath, fs.PathJoin(dir, name)); err != nil {
		return fmt.Errorf("renaming %s over %s: %w", tmp, name, err)
	}
	if err := SyncDir(fs, dir); err != nil {
		return fmt.Errorf("syncing the directory after %s: %w", name, err)
	}
	return nil
}

// Usage returns the sum of the sizes of the regular files below dir,
// recursively: the space the directory's contents take, as tests and
// metrics measure it.
func Usage(fs FS, dir string) (int64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, name := range names {
		p := fs.PathJoin(dir, name)
		fi, err := fs.Stat(p)
		if err != nil {
			return 0, err
		}
		if !fi.IsDir() {
			total += fi.Size()
			continue
		}
		n, err := Usage(fs, p)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
