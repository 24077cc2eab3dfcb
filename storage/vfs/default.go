package vfs

import (
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Default is the FS of the operating system: files wrap *os.File, Sync is
// fsync, SyncData (see DataSyncer) is fdatasync on Linux, and a directory
// is synced by opening it and syncing its descriptor. It prefers overwrites
// (see OverwritePreferrer).
var Default FS = defaultFS{}

type defaultFS struct{}

func (defaultFS) Create(name string) (File, error) {
	return wrapOS(os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644))
}

func (defaultFS) Open(name string) (File, error) {
	return wrapOS(os.Open(name))
}

func (defaultFS) OpenReadWrite(name string) (File, error) {
	return wrapOS(os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644))
}

func (defaultFS) OpenDir(name string) (File, error) {
	return wrapOS(os.Open(name))
}

func (defaultFS) Remove(name string) error             { return os.Remove(name) }
func (defaultFS) RemoveAll(name string) error          { return os.RemoveAll(name) }
func (defaultFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (defaultFS) Stat(name string) (os.FileInfo, error) {
	return os.Stat(name)
}

func (defaultFS) MkdirAll(dir string, perm os.FileMode) error {
	return os.MkdirAll(dir, perm)
}

// PrefersOverwrite implements OverwritePreferrer.
func (defaultFS) PrefersOverwrite() bool { return true }

func (defaultFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

func (defaultFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (defaultFS) PathJoin(elem ...string) string { return filepath.Join(elem...) }
func (defaultFS) PathBase(path string) string    { return filepath.Base(path) }
func (defaultFS) PathDir(path string) string     { return filepath.Dir(path) }

// osFile is a File of Default: an *os.File that also syncs its data alone.
type osFile struct{ *os.File }

// SyncData implements DataSyncer with fdatasync where the platform has it.
func (f osFile) SyncData() error { return syncData(f.File) }

// wrapOS returns f as a File, keeping a nil interface for a nil *os.File.
func wrapOS(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
