package tcp_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
	"github.com/corfulog/corfu/transport/tcp/tcptest"
)

// A storage unit served over TCP, and a client that writes to it and reads
// back through a UnitClient, as corfu's client does.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := tcp.Serve(l, &transport.Server{Unit: storage.NewMemory()}, tcp.ServerConfig{Node: "unit0"})
	if err != nil {
		panic(err)
	}
	defer srv.Close() // drains requests in flight

	c, err := tcp.NewClient(tcp.ClientConfig{
		Resolve: tcp.StaticResolver(map[transport.NodeID]string{"unit0": l.Addr().String()}),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ctx := context.Background()
	u := transport.UnitClient{Caller: c, Node: "unit0"}
	if err := u.Write(ctx, 0, 7, []byte("hello")); err != nil {
		panic(err)
	}
	data, err := u.Read(ctx, 0, 7)
	fmt.Printf("%s %v\n", data, err)
	err = u.Write(ctx, 0, 7, []byte("again"))
	fmt.Println(errors.Is(err, storage.ErrWritten)) // errors cross the wire by code
	_, err = c.Call(ctx, "unit9", &transport.Request{Op: transport.OpRead})
	fmt.Println(errors.Is(err, transport.ErrUnreachable))
	// Output:
	// hello <nil>
	// true
	// true
}

// The same over mutual TLS 1.3: the server's certificate names the node
// and grants the unit role; the client's grants the client role.
func Example_tls() {
	ca, err := tcptest.NewCA() // in production: certificates from the operator's CA
	if err != nil {
		panic(err)
	}
	serverTLS, err := ca.ServerTLS("unit0", tcp.RoleUnit)
	if err != nil {
		panic(err)
	}
	clientTLS, err := ca.ClientTLS("example")
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := tcp.Serve(l, &transport.Server{Unit: storage.NewMemory()}, tcp.ServerConfig{Node: "unit0", TLS: serverTLS})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	c, err := tcp.NewClient(tcp.ClientConfig{
		Resolve: tcp.StaticResolver(map[transport.NodeID]string{"unit0": l.Addr().String()}),
		TLS:     clientTLS,
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = transport.UnitClient{Caller: c, Node: "unit0"}.Read(context.Background(), 0, 1)
	fmt.Println(errors.Is(err, storage.ErrUnwritten))
	// Output: true
}
