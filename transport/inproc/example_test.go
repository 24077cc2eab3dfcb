package inproc_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/inproc"
)

// A storage unit served on an in-process network and used through a
// UnitClient, as a client would use a remote one.
func ExampleNetwork() {
	net := inproc.New()
	net.Register("unit-1", &transport.Server{Unit: storage.NewMemory()})
	u := transport.UnitClient{Caller: net, Node: "unit-1"}
	ctx := context.Background()

	if err := u.Write(ctx, 0, 7, []byte("hello")); err != nil {
		fmt.Println(err)
	}
	data, err := u.Read(ctx, 0, 7)
	fmt.Printf("%s %v\n", data, err)

	err = u.Write(ctx, 0, 7, []byte("again"))
	fmt.Println(errors.Is(err, storage.ErrWritten))

	if _, err := u.Seal(ctx, 2); err != nil {
		fmt.Println(err)
	}
	_, err = u.Read(ctx, 1, 7)
	var sealed *storage.SealedError
	fmt.Println(errors.As(err, &sealed), sealed.Epoch)

	_, err = net.Call(ctx, "unit-9", &transport.Request{Op: transport.OpRead})
	fmt.Println(errors.Is(err, transport.ErrUnreachable))
	// Output:
	// hello <nil>
	// true
	// true 2
	// true
}
