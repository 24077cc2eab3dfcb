package kvmap_test

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/kvmap"
)

// Two replicas of one map, each with its own client, agree through the log.
func Example() {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	open := func() *corfu.Client {
		c, err := corfu.Open(ctx, cluster.Config())
		if err != nil {
			panic(err)
		}
		return c
	}
	const stream corfu.StreamID = 7
	alice, bob := kvmap.New(open(), stream), kvmap.New(open(), stream)

	_ = alice.Put(ctx, "colour", "blue")
	_ = bob.Put(ctx, "colour", "green") // the later append wins
	_ = alice.Put(ctx, "shape", "round")

	v, _, _ := bob.Get(ctx, "colour")
	n, _ := alice.Len(ctx)
	fmt.Println(v, n)
	// Output: green 2
}
