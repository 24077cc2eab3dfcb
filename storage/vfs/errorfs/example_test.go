package errorfs_test

import (
	"errors"
	"fmt"

	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
)

// The second sync fails; every other operation runs on the wrapped FS.
func ExampleWrap() {
	inj := errorfs.OnIndex(errorfs.Ops(errorfs.OpSync), 1, errorfs.Fault{Kind: errorfs.Error})
	fs := errorfs.Wrap(vfs.NewMem(), inj, errorfs.Options{})
	f, _ := fs.Create("/f")
	fmt.Println(f.Sync())
	fmt.Println(errors.Is(f.Sync(), errorfs.ErrInjected))
	// Output:
	// <nil>
	// true
}
