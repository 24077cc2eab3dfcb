package corfu_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
)

// open starts an in-process cluster (3 layout servers, a sequencer, 6
// in-memory units in chains of 2) and a client of it.
func open(ctx context.Context) (*corfutest.Cluster, *corfu.Client) {
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	cfg := cluster.Config()
	// Short waits, for the examples: a reader fills an abandoned address
	// after 100ms instead of the default 2s.
	cfg.RPCTimeout = 20 * time.Millisecond
	cfg.HoleFillWait = 100 * time.Millisecond
	c, err := corfu.Open(ctx, cfg)
	if err != nil {
		panic(err)
	}
	return cluster, c
}

func ExampleClient_Append() {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	c, err := corfu.Open(ctx, cluster.Config())
	if err != nil {
		panic(err)
	}

	for _, s := range []string{"hello", "shared", "log"} {
		addr, err := c.Append(ctx, []byte(s))
		if err != nil {
			panic(err)
		}
		fmt.Println("appended at", addr)
	}
	e, err := c.Read(ctx, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("read %d: %s\n", e.Address, e.Data)
	// Output:
	// appended at 0
	// appended at 1
	// appended at 2
	// read 1: shared
}

func ExampleClient_Read() {
	ctx := context.Background()
	cluster, c := open(ctx)
	if _, err := c.Append(ctx, []byte("first")); err != nil {
		panic(err)
	}
	// A writer takes address 1 and crashes before writing it.
	if _, err := cluster.Sequencer.Next(0, 1, nil); err != nil {
		panic(err)
	}
	if _, err := c.Append(ctx, []byte("third")); err != nil {
		panic(err)
	}

	// Address 1 is a hole: the reader waits HoleFillWait for its writer,
	// then fills it with junk, and every later reader sees junk there.
	// Address 3 has not been handed out yet.
	for a := range storage.Address(4) {
		e, err := c.Read(ctx, a)
		switch {
		case errors.Is(err, corfu.ErrJunk):
			fmt.Printf("%d: junk, skip it\n", a)
		case errors.Is(err, corfu.ErrUnwritten):
			fmt.Printf("%d: not written yet, at or past the tail\n", a)
		case err != nil:
			fmt.Printf("%d: %v\n", a, err)
		default:
			fmt.Printf("%d: %s\n", a, e.Data)
		}
	}
	// Output:
	// 0: first
	// 1: junk, skip it
	// 2: third
	// 3: not written yet, at or past the tail
}

func ExampleStream() {
	ctx := context.Background()
	_, c := open(ctx)
	const orders, audit = corfu.StreamID(1), corfu.StreamID(2)
	appends := []struct {
		data    string
		streams []corfu.StreamID
	}{
		{"order 1", []corfu.StreamID{orders}},
		{"login", []corfu.StreamID{audit}},
		{"order 2", []corfu.StreamID{orders, audit}},
		{"unrelated", nil},
	}
	for _, a := range appends {
		if _, err := c.Append(ctx, []byte(a.data), a.streams...); err != nil {
			panic(err)
		}
	}

	s := c.Stream(orders, 0)
	sync := func() {
		entries, err := s.Sync(ctx)
		if err != nil {
			panic(err)
		}
		for _, e := range entries {
			fmt.Printf("%d: %s\n", e.Address, e.Data)
		}
		fmt.Println("position", s.Position())
	}
	sync()
	// A second Sync returns only what was appended since.
	if _, err := s.Append(ctx, []byte("order 3")); err != nil {
		panic(err)
	}
	sync()
	// Output:
	// 0: order 1
	// 2: order 2
	// position 4
	// 4: order 3
	// position 5
}

// A follower of a stream: Sync returns what the stream holds, and Wait
// waits for the next append to the log, however long that takes.
func ExampleStream_Wait() {
	ctx := context.Background()
	_, c := open(ctx)
	const orders = corfu.StreamID(1)
	go func() { // another writer, appending while the follower waits
		for _, a := range []struct {
			data    string
			streams []corfu.StreamID
		}{{"order 1", []corfu.StreamID{orders}}, {"login", nil}, {"order 2", []corfu.StreamID{orders}}} {
			if _, err := c.Append(ctx, []byte(a.data), a.streams...); err != nil {
				panic(err)
			}
		}
	}()

	s := c.Stream(orders, 0)
	for seen := 0; seen < 2; {
		entries, err := s.Sync(ctx)
		if err != nil {
			panic(err)
		}
		for _, e := range entries {
			fmt.Printf("%d: %s\n", e.Address, e.Data)
			seen++
		}
		if seen < 2 {
			if err := s.Wait(ctx); err != nil {
				panic(err)
			}
		}
	}
	// Output:
	// 0: order 1
	// 2: order 2
}

func ExampleClient_Range() {
	ctx := context.Background()
	cluster, c := open(ctx)
	appendAll := func(ss ...string) {
		for _, s := range ss {
			if _, err := c.Append(ctx, []byte(s)); err != nil {
				panic(err)
			}
		}
	}
	appendAll("a", "b")
	// A writer takes address 2 and crashes; Fill junk-fills it at once
	// rather than leaving it to a reader's wait.
	if _, err := cluster.Sequencer.Next(0, 1, nil); err != nil {
		panic(err)
	}
	appendAll("c")
	if err := c.Fill(ctx, 2); err != nil {
		panic(err)
	}
	tail, err := c.Tail(ctx)
	if err != nil {
		panic(err)
	}

	// Range skips junk.
	for e, err := range c.Range(ctx, 0, tail) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d: %s\n", e.Address, e.Data)
	}
	// After a prefix trim, a Range from 0 stops at once with ErrTrimmed.
	if err := c.PrefixTrim(ctx, 1); err != nil {
		panic(err)
	}
	for e, err := range c.Range(ctx, 0, tail) {
		if errors.Is(err, corfu.ErrTrimmed) {
			fmt.Printf("%d: trimmed\n", e.Address)
			break
		}
	}
	// Output:
	// 0: a
	// 1: b
	// 3: c
	// 0: trimmed
}

func ExampleClient_AppendAsync() {
	ctx := context.Background()
	_, c := open(ctx)

	// Start many appends without waiting for each: they share token
	// requests and unit requests (batches), up to Config.Window in flight.
	var futures []*corfu.AppendFuture
	for i := range 100 {
		f, err := c.AppendAsync(ctx, []byte(fmt.Sprintf("event %d", i)))
		if err != nil {
			panic(err)
		}
		futures = append(futures, f)
	}
	if err := c.Flush(ctx); err != nil { // every append is done
		panic(err)
	}
	addr, err := futures[42].Wait(ctx)
	if err != nil {
		panic(err)
	}
	e, err := c.Read(ctx, addr)
	if err != nil {
		panic(err)
	}
	fmt.Printf("pending %d; %s\n", c.Pending(), e.Data)
	// Output:
	// pending 0; event 42
}
