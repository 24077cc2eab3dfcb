package vfs_test

import (
	"fmt"
	"io"

	"github.com/corfulog/corfu/storage/vfs"
)

// A power loss keeps what was synced: the file's bytes up to its last Sync,
// and its directory entry only once the directory was synced.
func ExampleMemFS_CrashClone() {
	fs := vfs.NewMem()
	f, _ := fs.Create("/log")
	_, _ = f.Write([]byte("durable"))
	_ = f.Sync()
	_ = vfs.SyncDir(fs, "/")
	_, _ = f.Write([]byte(" lost"))

	after := fs.CrashClone(vfs.CrashOptions{})
	g, _ := after.Open("/log")
	b, _ := io.ReadAll(g)
	fmt.Printf("%q\n", b)
	// Output: "durable"
}
