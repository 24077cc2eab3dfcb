package disk_test

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
)

// A unit on an in-memory FS survives a power loss with everything it
// acknowledged: the crash clone keeps only what was synced.
func ExampleOpen() {
	ctx := context.Background()
	fs := vfs.NewMem()
	opts := disk.Options{Node: "unit-a", ID: disk.ID{0x2a}}
	u, err := disk.Open(fs, "/data", opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = u.Write(ctx, 0, 0, []byte("hello"))
	_, _ = u.Seal(ctx, 3)

	after := fs.CrashClone(vfs.CrashOptions{})
	r, err := disk.Open(after, "/data", opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	data, err := r.Read(ctx, 3, 0)
	fmt.Printf("%s %v epoch %d\n", data, err, r.Epoch())
	// Output: hello <nil> epoch 3
}
