package transport_test

import (
	"errors"
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// sampleProjection returns a small valid projection.
func sampleProjection(epoch storage.Epoch) *projection.Projection {
	return &projection.Projection{
		Epoch:     epoch,
		Sequencer: "seq",
		Layout:    []transport.NodeID{"layout-1", "layout-2", "layout-3"},
		Segments: []projection.Segment{
			{Start: 0, End: 100, Base: 0, Stripes: []projection.Chain{{"u1", "u2"}, {"u3", "u4"}}},
			{Start: 100, Base: 50, Stripes: []projection.Chain{{"u1", "u2"}}},
		},
	}
}

// sampleRequests returns a named request of every op, with its fields set,
// plus a few with every field set and with nil and empty slices.
func sampleRequests() map[string]*transport.Request {
	tails := []sequencer.StreamTail{
		{Stream: 7, Addrs: []storage.Address{40, 30, 20}},
		{Stream: 1 << 40, Addrs: []storage.Address{}},
		{Stream: 9},
	}
	return map[string]*transport.Request{
		"write":         {Op: transport.OpWrite, Epoch: 3, Addr: 17, Data: []byte("hello")},
		"write empty":   {Op: transport.OpWrite, Epoch: 3, Addr: 18, Data: []byte{}},
		"write nil":     {Op: transport.OpWrite, Epoch: 3, Addr: 19},
		"write max":     {Op: transport.OpWrite, Epoch: 1<<64 - 1, Addr: storage.MaxAddress, Data: make([]byte, storage.MaxEntryBytes)},
		"write too big": {Op: transport.OpWrite, Epoch: 1, Addr: 2, Data: make([]byte, storage.MaxEntryBytes+1)},
		"read":          {Op: transport.OpRead, Epoch: 3, Addr: 17},
		"fill":          {Op: transport.OpFill, Epoch: 3, Addr: 1 << 62},
		"trim":          {Op: transport.OpTrim, Epoch: 0, Addr: 5},
		"prefix trim":   {Op: transport.OpPrefixTrim, Epoch: 2, Addr: 500},
		"seal":          {Op: transport.OpSeal, Epoch: 4},
		"join":          {Op: transport.OpJoin, Epoch: 4},
		"token":         {Op: transport.OpToken, Epoch: 4, N: 3, Streams: []sequencer.StreamID{1, 2, 1 << 63}},
		"token empty":   {Op: transport.OpToken, Epoch: 4, N: 1, Streams: []sequencer.StreamID{}},
		"token max":     {Op: transport.OpToken, Epoch: 4, N: 1<<32 - 1, Streams: make([]sequencer.StreamID, sequencer.MaxStreams)},
		"bootstrap":     {Op: transport.OpBootstrap, Epoch: 5, Addr: 1000, Tails: tails},
		"sequencer sea": {Op: transport.OpSeqSeal, Epoch: 5},
		"get layout":    {Op: transport.OpGetLayout},
		"prepare":       {Op: transport.OpPrepare, Epoch: 6, Rank: 12},
		"propose":       {Op: transport.OpPropose, Epoch: 6, Rank: 12, Projection: sampleProjection(6)},
		"commit":        {Op: transport.OpCommit, Projection: sampleProjection(6)},
		"every field": {
			Op: transport.OpWrite, Epoch: 1, Addr: 2, Data: []byte{0, 1, 2}, N: 3, Rank: 4,
			Streams: []sequencer.StreamID{5}, Tails: tails, Projection: sampleProjection(9),
		},
	}
}

// sampleErrors returns errors of every kind the table knows, wrapped and
// not, plus ones it does not know.
func sampleErrors() map[string]error {
	return map[string]error{
		"written":         storage.ErrWritten,
		"sealed epoch":    &storage.SealedError{Epoch: 42},
		"sealed bare":     storage.ErrSealed,
		"wrapped sealed":  fmt.Errorf("unit u1: %w", &storage.SealedError{Epoch: 7}),
		"wrapped written": fmt.Errorf("write 9: %w", storage.ErrWritten),
		"two sentinels":   fmt.Errorf("%w: data: %w", transport.ErrMalformed, storage.ErrTooLarge),
		"joined":          errors.Join(sequencer.ErrNotReady, &storage.SealedError{Epoch: 1}),
		"unknown":         errors.New("disk on fire"),
		"remote":          transport.ErrRemote,
		"not ready":       sequencer.ErrNotReady,
		"stale":           projection.ErrStaleEpoch,
	}
}

// sampleResponses returns a named response of every shape.
func sampleResponses() map[string]*transport.Response {
	rs := map[string]*transport.Response{
		"ok":          {},
		"read":        {Data: []byte("hello")},
		"read empty":  {Data: []byte{}},
		"seal":        {Addr: 99},
		"token":       {Addr: 1 << 40, Tails: []sequencer.StreamTail{{Stream: 1, Addrs: []storage.Address{5, 4}}, {Stream: 2}}},
		"get layout":  {Projection: sampleProjection(3)},
		"prepare":     {Rank: 8, Projection: sampleProjection(4)},
		"prepare nil": {Rank: 0},
		"every field": {
			Err: storage.ErrJunk, Addr: 1, Data: []byte{9}, Rank: 2,
			Tails: []sequencer.StreamTail{{Stream: 3, Addrs: []storage.Address{}}}, Projection: sampleProjection(5),
		},
	}
	for name, err := range sampleErrors() {
		rs["error "+name] = &transport.Response{Err: err}
	}
	return rs
}
