package corfu_test

import (
	"context"
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// A detector heals a log whose unit crashed: it suspects the unit after
// Misses rounds without an answer, replaces it with a spare in the open
// segment, then rebuilds the closed chain the crash left short onto the
// spare. Run does the same rounds every Interval until its ctx ends.
func ExampleDetector() {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{Units: 4, Replicas: 2, Spares: 1})
	if err != nil {
		panic(err)
	}
	c, err := corfu.Open(ctx, cluster.Config())
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if _, err := c.Append(ctx, []byte(s)); err != nil {
			panic(err)
		}
	}

	d := corfu.NewDetector(c, corfu.DetectorConfig{
		Spares:  cluster.UnitIDs[len(cluster.UnitIDs)-1:], // spare0
		Timeout: time.Second,                              // in process, a live node answers at once
		OnEvent: func(ev corfu.DetectorEvent) {
			fmt.Printf("%s node=%q fresh=%q epoch=%d err=%v\n", ev.Kind, ev.Node, ev.Fresh, ev.Epoch, ev.Err)
		},
	})
	cluster.Net.Remove("unit0") // unit0 crashes
	for round := 1; round <= 5; round++ {
		if d.Step(ctx) {
			fmt.Println("round", round, "committed epoch", c.Epoch())
		}
	}
	for _, seg := range c.Projection().Segments {
		fmt.Println(seg.Start, seg.End, seg.Stripes)
	}
	addr, err := c.Append(ctx, []byte("d"))
	if err != nil {
		panic(err)
	}
	e, err := c.Read(ctx, addr)
	fmt.Printf("%d: %s %v\n", addr, e.Data, err)
	// Output:
	// suspect node="unit0" fresh="" epoch=0 err=<nil>
	// replace node="unit0" fresh="spare0" epoch=1 err=<nil>
	// round 3 committed epoch 1
	// rebuild node="" fresh="" epoch=2 err=<nil>
	// round 4 committed epoch 2
	// 0 3 [[spare0 unit1] [unit2 unit3]]
	// 3 0 [[spare0 unit1] [unit2 unit3]]
	// 3: d <nil>
}
