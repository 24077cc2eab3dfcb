//go:build !unix

package vfs

import (
	"io"
	"os"
)

// lockFile creates name; this platform offers no advisory lock here, so two
// processes are not kept apart.
func lockFile(name string) (io.Closer, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
}
