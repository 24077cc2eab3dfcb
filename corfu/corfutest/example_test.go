package corfutest_test

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// A cluster served over loopback TCP with mutual TLS, and a client that
// owns its own connections.
func ExampleNewTCP() {
	ctx := context.Background()
	cluster, err := corfutest.NewTCP(corfutest.Options{}, corfutest.TCPOptions{TLS: true})
	if err != nil {
		panic(err)
	}
	defer cluster.Close()

	cfg := cluster.Config()
	if cfg.Transport, err = cluster.NewCaller(); err != nil {
		panic(err)
	}
	c, err := corfu.Open(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close() // closes its connections
	addr, err := c.Append(ctx, []byte("over the wire"))
	if err != nil {
		panic(err)
	}
	e, err := c.Read(ctx, addr)
	fmt.Printf("%d: %s %v\n", addr, e.Data, err)
	// Output: 0: over the wire <nil>
}
