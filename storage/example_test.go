package storage_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/storage"
)

func ExampleMemory() {
	ctx := context.Background()
	u := storage.NewMemory()

	// Every request carries the sender's epoch; a new unit is at epoch 0.
	if err := u.Write(ctx, 0, 0, []byte("hello")); err != nil {
		fmt.Println("write:", err)
	}
	data, err := u.Read(ctx, 0, 0)
	fmt.Printf("read 0: %q %v\n", data, err)

	// Addresses are write-once.
	err = u.Write(ctx, 0, 0, []byte("again"))
	fmt.Println("write 0 again:", errors.Is(err, storage.ErrWritten))

	// A reader that finds a hole fills it with junk.
	_, err = u.Read(ctx, 0, 1)
	fmt.Println("read 1:", errors.Is(err, storage.ErrUnwritten))
	_ = u.Fill(ctx, 0, 1)
	_, err = u.Read(ctx, 0, 1)
	fmt.Println("read 1 after fill:", errors.Is(err, storage.ErrJunk))

	// Sealing moves the unit to a new epoch and reports its tail.
	tail, _ := u.Seal(ctx, 1)
	fmt.Println("tail:", tail)

	// A request from the old epoch is refused with the unit's epoch.
	err = u.Write(ctx, 0, 2, []byte("late"))
	var sealed *storage.SealedError
	if errors.As(err, &sealed) {
		fmt.Println("sealed at epoch", sealed.Epoch)
	}

	// Output:
	// read 0: "hello" <nil>
	// write 0 again: true
	// read 1: true
	// read 1 after fill: true
	// tail: 2
	// sealed at epoch 1
}
