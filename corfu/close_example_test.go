package corfu_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// Close, once the client's operations have returned: it closes the
// client's own transport, and later operations fail with ErrClosed.
func ExampleClient_Close() {
	ctx := context.Background()
	cluster, err := corfutest.NewTCP(corfutest.Options{}, corfutest.TCPOptions{})
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	cfg := cluster.Config()
	if cfg.Transport, err = cluster.NewCaller(); err != nil { // the client's own connections
		panic(err)
	}
	c, err := corfu.Open(ctx, cfg)
	if err != nil {
		panic(err)
	}
	if _, err := c.Append(ctx, []byte("last words")); err != nil {
		panic(err)
	}
	fmt.Println(c.Close())
	_, err = c.Append(ctx, []byte("too late"))
	fmt.Println(errors.Is(err, corfu.ErrClosed))
	// Output:
	// <nil>
	// true
}
