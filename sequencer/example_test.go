package sequencer_test

import (
	"errors"
	"fmt"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

func Example() {
	seq := sequencer.New(sequencer.Config{Backpointers: 2})

	// A new sequencer hands out nothing until it is bootstrapped, here in
	// epoch 1 with the tail found by sealing the storage units.
	_, err := seq.Next(1, 1, nil)
	fmt.Println(errors.Is(err, sequencer.ErrNotReady))
	if err := seq.Bootstrap(1, 100, nil); err != nil {
		panic(err)
	}

	const orders, audit = sequencer.StreamID(1), sequencer.StreamID(2)
	for _, streams := range [][]sequencer.StreamID{{orders}, {orders, audit}, {orders}} {
		tok, err := seq.Next(1, 1, streams)
		if err != nil {
			panic(err)
		}
		fmt.Println(tok.Start, tok.Backpointers)
	}

	// A reconfiguration seals it at epoch 2; requests of epoch 1 are refused.
	res, _ := seq.Seal(2)
	_, err = seq.Next(1, 1, nil)
	var sealed *storage.SealedError
	fmt.Println(res.Tail, errors.As(err, &sealed), sealed.Epoch)
	// Output:
	// true
	// 100 [{1 []}]
	// 101 [{1 [100]} {2 []}]
	// 102 [{1 [101 100]}]
	// 103 true 2
}
