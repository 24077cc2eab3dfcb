package tango_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/tango"
)

// cluster returns an in-process cluster and a function that opens a
// runtime on a client of its own.
func cluster() func() *tango.Runtime {
	cl, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	return func() *tango.Runtime {
		c, err := corfu.Open(context.Background(), cl.Config())
		if err != nil {
			panic(err)
		}
		return tango.New(c, tango.Options{})
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

// Two runtimes, on two clients, host the same map: a put on one is seen by
// the next query on the other.
func Example() {
	ctx := context.Background()
	open := cluster()
	a, err := tango.NewMap[string, int](open(), 1)
	check(err)
	b, err := tango.NewMap[string, int](open(), 1)
	check(err)

	check(a.Put(ctx, "apples", 3))
	check(b.Put(ctx, "pears", 5))
	v, ok, err := b.Get(ctx, "apples") // syncs first: a linearizable read
	check(err)
	fmt.Println(v, ok)
	n, err := a.Len(ctx)
	check(err)
	fmt.Println(n)
	// Output:
	// 3 true
	// 2
}

// A set of strings, written as an object of one's own: the state, the
// operations, and the Apply upcall; the default codec carries both.
func ExampleNewObject() {
	type setOp struct {
		Remove bool
		Item   string
	}
	ctx := context.Background()
	open := cluster()
	spec := tango.Spec[map[string]bool, setOp]{
		ID:   7,
		Init: func() map[string]bool { return map[string]bool{} },
		Apply: func(s *map[string]bool, op setOp) {
			if op.Remove {
				delete(*s, op.Item)
			} else {
				(*s)[op.Item] = true
			}
		},
		Keys: func(op setOp) []string { return []string{op.Item} }, // per-item conflicts
	}
	mine, err := tango.NewObject(open(), spec)
	check(err)
	theirs, err := tango.NewObject(open(), spec)
	check(err)
	check(mine.Update(ctx, setOp{Item: "x"}))
	check(theirs.Update(ctx, setOp{Item: "y"}))
	check(mine.Update(ctx, setOp{Remove: true, Item: "x"}))
	check(theirs.Query(ctx, func(s map[string]bool) {
		var items []string
		for it := range s {
			items = append(items, it)
		}
		slices.Sort(items)
		fmt.Println(items)
	}))
	// Output: [y]
}

// A transaction over two registers: it commits only if neither changed
// since it read them.
func ExampleRuntime_RunTx() {
	ctx := context.Background()
	open := cluster()
	r := open()
	from, err := tango.NewRegister[int](r, 1)
	check(err)
	to, err := tango.NewRegister[int](r, 2)
	check(err)
	check(from.Set(ctx, 100))
	check(r.RunTx(ctx, func(ctx context.Context) error {
		x, err := from.Get(ctx) // inside the transaction: recorded, not synced
		if err != nil {
			return err
		}
		y, err := to.Get(ctx)
		if err != nil {
			return err
		}
		if err := from.Set(ctx, x-40); err != nil { // buffered until the commit
			return err
		}
		return to.Set(ctx, y+40)
	}))
	other, err := tango.NewRegister[int](open(), 2)
	check(err)
	v, err := other.Get(ctx)
	check(err)
	fmt.Println(v)
	// Output: 40
}

// A checkpoint lets the log be trimmed; a runtime opened afterwards is
// built from the checkpoint and the log after it.
func ExampleRuntime_Checkpoint() {
	ctx := context.Background()
	open := cluster()
	r := open()
	n, err := tango.NewCounter(r, 3)
	check(err)
	for range 10 {
		check(n.Add(ctx, 1))
	}
	at, err := r.Checkpoint(ctx)
	check(err)
	check(n.Add(ctx, 5))
	mark, err := r.Trim(ctx)
	check(err)
	fmt.Println(at == mark)

	fresh, err := tango.NewCounter(open(), 3)
	check(err)
	v, err := fresh.Get(ctx)
	check(err)
	fmt.Println(v)
	// Output:
	// true
	// 15
}

// A snapshot reads the objects as of a log position.
func ExampleRuntime_ReadAt() {
	ctx := context.Background()
	r := cluster()()
	g, err := tango.NewRegister[string](r, 4)
	check(err)
	check(g.Set(ctx, "first"))
	check(r.Sync(ctx))
	at, _ := g.Object().Version() // the address of the first Set
	check(g.Set(ctx, "second"))
	check(r.ReadAt(ctx, at+1, func(ctx context.Context) error {
		v, err := g.Get(ctx)
		fmt.Println(v)
		return err
	}))
	// Output: first
}
