package projection_test

import (
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

func ExampleProjection_Locate() {
	p := &projection.Projection{
		Epoch:     1,
		Sequencer: "seq",
		Layout:    []projection.NodeID{"layout1", "layout2", "layout3"},
		Segments: []projection.Segment{
			// Addresses 0..5 over two chains of two replicas.
			{Start: 0, End: 6, Base: 0, Stripes: []projection.Chain{{"a", "b"}, {"c", "d"}}},
			// From 6 on, over one chain; unit a continues at local 3.
			{Start: 6, Base: 3, Stripes: []projection.Chain{{"a", "c"}}},
		},
	}
	if err := p.Validate(); err != nil {
		panic(err)
	}
	for _, a := range []storage.Address{0, 1, 5, 6, 7} {
		loc, err := p.Locate(a)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d -> segment %d stripe %d chain %v local %d\n", a, loc.Segment, loc.Stripe, loc.Chain, loc.Local)
	}
	// Output:
	// 0 -> segment 0 stripe 0 chain [a b] local 0
	// 1 -> segment 0 stripe 1 chain [c d] local 0
	// 5 -> segment 0 stripe 1 chain [c d] local 2
	// 6 -> segment 1 stripe 0 chain [a c] local 3
	// 7 -> segment 1 stripe 0 chain [a c] local 4
}
