package tcp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
)

// gated serves a unit, holding every read of address 1 until release is
// closed; entered counts the reads held.
type gated struct {
	inner   transport.Handler
	entered chan struct{}
	release chan struct{}
	held    atomic.Int32
}

func newGated() *gated {
	return &gated{inner: &transport.Server{Unit: storage.NewMemory()}, entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (g *gated) Handle(req *transport.Request) *transport.Response {
	if req.Op == transport.OpRead && req.Addr == 1 {
		g.held.Add(1)
		g.entered <- struct{}{}
		<-g.release
	}
	return g.inner.Handle(req)
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

type result struct {
	resp *transport.Response
	err  error
}

func callAsync(c *tcp.Client, ctx context.Context, req *transport.Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := c.Call(ctx, "node", req)
		ch <- result{resp, err}
	}()
	return ch
}

// TestShutdownDrains checks a graceful shutdown: a request in flight is
// answered, later requests find the node unreachable, and Shutdown returns
// once the answer is out.
func TestShutdownDrains(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	l := listen(t)
	srv, err := tcp.Serve(l, g, tcp.ServerConfig{Node: "node"})
	require.NoError(t, err)
	c := client(t, map[transport.NodeID]string{"node": l.Addr().String()}, plain(), nil)
	ctx := context.Background()

	held := callAsync(c, ctx, &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()

	// A request sent once the shutdown began is not served: the listener
	// is closed, so the client finds the node unreachable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = c.Call(ctx, "node", &transport.Request{Op: transport.OpWrite, Addr: 2, Data: []byte("x")})
		if errors.Is(err, transport.ErrUnreachable) || time.Now().After(deadline) {
			break
		}
		require.NoError(t, err) // served before the shutdown reached the connection
	}
	require.ErrorIs(t, err, transport.ErrUnreachable)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(g.release)
	r := wait(t, held)
	require.ErrorIs(t, r.err, storage.ErrUnwritten, "the request in flight was answered")
	require.NotNil(t, r.resp)
	require.NoError(t, wait(t, done))
	require.NoError(t, srv.Close(), "Close after Shutdown returns Shutdown's result")
}

// TestShutdownDeadline checks that a shutdown whose ctx ends cuts the
// connections: the call in flight fails, and Shutdown returns ctx's error
// once the handler returns.
func TestShutdownDeadline(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	l := listen(t)
	srv, err := tcp.Serve(l, g, tcp.ServerConfig{Node: "node"})
	require.NoError(t, err)
	c := client(t, map[transport.NodeID]string{"node": l.Addr().String()}, plain(), nil)
	held := callAsync(c, context.Background(), &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	r := wait(t, held)
	require.ErrorIs(t, r.err, transport.ErrUnreachable, "the connection was cut")
	close(g.release)
	require.ErrorIs(t, wait(t, done), context.DeadlineExceeded)
}

// TestClientClose checks that Close ends the calls in flight and refuses
// later ones, and leaves no goroutine behind.
func TestClientClose(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	_, addr := serve(t, "node", g, plain(), nil)
	c, err := tcp.NewClient(tcp.ClientConfig{Resolve: tcp.StaticResolver(map[transport.NodeID]string{"node": addr})})
	require.NoError(t, err)
	held := callAsync(c, context.Background(), &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	require.NoError(t, c.Close())
	r := wait(t, held)
	require.ErrorIs(t, r.err, tcp.ErrClosed)
	require.ErrorIs(t, r.err, transport.ErrUnreachable)
	_, err = c.Call(context.Background(), "node", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, tcp.ErrClosed)
	require.NoError(t, c.Close(), "Close is idempotent")
	close(g.release)
}

// TestInFlightLimit checks both sides of the in-flight limit: the client
// keeps to the one the server announces (a call beyond it waits, and gives
// up with its ctx without being sent), and the server reads no more than
// its limit from a connection, whatever the peer sends.
func TestInFlightLimit(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	_, addr := serve(t, "node", g, plain(), func(c *tcp.ServerConfig) { c.MaxInFlight = 2 })
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), nil)
	ctx := context.Background()
	a := callAsync(c, ctx, &transport.Request{Op: transport.OpRead, Addr: 1})
	b := callAsync(c, ctx, &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	wait(t, g.entered)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := c.Call(short, "node", &transport.Request{Op: transport.OpWrite, Addr: 5, Data: []byte("x")})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a third call waits for a slot")
	close(g.release)
	require.ErrorIs(t, wait(t, a).err, storage.ErrUnwritten)
	require.ErrorIs(t, wait(t, b).err, storage.ErrUnwritten)
	_, err = c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 5})
	require.ErrorIs(t, err, storage.ErrUnwritten, "the third call was never sent")
	require.Equal(t, int32(2), g.held.Load())
}

// TestStalledHandler checks that a request that blocks in the Handler
// holds up no other on its connection: later ones are read and answered
// meanwhile, out of order, and the blocked one is answered once it
// returns.
func TestStalledHandler(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	_, addr := serve(t, "node", g, plain(), nil)
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), nil)
	ctx := context.Background()
	held := callAsync(c, ctx, &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	for i := range 100 {
		err := transport.UnitClient{Caller: c, Node: "node"}.Write(ctx, 0, storage.Address(10+i), []byte("x"))
		require.NoError(t, err)
	}
	select {
	case r := <-held:
		t.Fatalf("the held request was answered: %v", r.err)
	default:
	}
	close(g.release)
	require.ErrorIs(t, wait(t, held).err, storage.ErrUnwritten)
	require.Equal(t, int32(1), g.held.Load())
}

// TestSlotWait checks the client's own in-flight limit: calls beyond it
// wait for slots and are sent as answers free them, and one that gives up
// first is never sent and takes no slot from the others.
func TestSlotWait(t *testing.T) {
	checkGoroutines(t)
	g := newGated()
	_, addr := serve(t, "node", g, plain(), nil)
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), func(c *tcp.ClientConfig) { c.MaxInFlight = 1 })
	ctx := context.Background()
	held := callAsync(c, ctx, &transport.Request{Op: transport.OpRead, Addr: 1})
	wait(t, g.entered)
	var writes []<-chan result
	for i := range 3 {
		writes = append(writes, callAsync(c, ctx, &transport.Request{Op: transport.OpWrite, Addr: storage.Address(10 + i), Data: []byte("x")}))
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := c.Call(short, "node", &transport.Request{Op: transport.OpWrite, Addr: 5, Data: []byte("x")})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a call beyond the limit waits for a slot")
	close(g.release)
	require.ErrorIs(t, wait(t, held).err, storage.ErrUnwritten)
	for _, w := range writes {
		require.NoError(t, wait(t, w).err)
	}
	for i := range 3 {
		_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: storage.Address(10 + i)})
		require.NoError(t, err)
	}
	_, err = c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 5})
	require.ErrorIs(t, err, storage.ErrUnwritten, "the call that gave up was never sent")
}

// TestReconnect checks that a client redials a node that went away and
// came back at the same address, after its backoff.
func TestReconnect(t *testing.T) {
	checkGoroutines(t)
	l := listen(t)
	addr := l.Addr().String()
	unit := &transport.Server{Unit: storage.NewMemory()}
	srv, err := tcp.Serve(l, unit, tcp.ServerConfig{Node: "node"})
	require.NoError(t, err)
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), nil)
	u := transport.UnitClient{Caller: c, Node: "node"}
	ctx := context.Background()
	require.NoError(t, u.Write(ctx, 0, 1, []byte("before")))
	require.NoError(t, srv.Close())
	_, err = u.Read(ctx, 0, 1)
	require.ErrorIs(t, err, transport.ErrUnreachable)

	l2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv2, err := tcp.Serve(l2, unit, tcp.ServerConfig{Node: "node"})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv2.Close()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := u.Read(ctx, 0, 1)
		if err == nil {
			require.Equal(t, "before", string(got))
			break
		}
		require.ErrorIs(t, err, transport.ErrUnreachable)
		require.True(t, time.Now().Before(deadline), "no reconnection: %v", err)
		time.Sleep(time.Millisecond)
	}
}

// TestRedial checks that Redial ends the wait after a failed dial: a node
// back at its address is dialed by the next call, not after the backoff.
func TestRedial(t *testing.T) {
	checkGoroutines(t)
	l := listen(t)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), func(c *tcp.ClientConfig) {
		c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour
	})
	u := transport.UnitClient{Caller: c, Node: "node"}
	ctx := context.Background()
	_, err := u.Read(ctx, 0, 1)
	require.ErrorIs(t, err, transport.ErrUnreachable, "nothing listens")

	l2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv, err := tcp.Serve(l2, &transport.Server{Unit: storage.NewMemory()}, tcp.ServerConfig{Node: "node"})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Close()) }()
	_, err = u.Read(ctx, 0, 1)
	require.ErrorIs(t, err, transport.ErrUnreachable, "within the backoff")
	require.ErrorContains(t, err, "next in")
	c.Redial("node")
	c.Redial("unknown") // NB: a node never called: nothing to do
	_, err = u.Read(ctx, 0, 1)
	require.ErrorIs(t, err, storage.ErrUnwritten, "dialed again at once")
}

// TestTLS13Only checks that a server refuses TLS below 1.3.
func TestTLS13Only(t *testing.T) {
	checkGoroutines(t)
	sec := mutualTLS(t)
	_, addr := serve(t, "node", &transport.Server{Unit: storage.NewMemory()}, sec, nil)
	cfg := sec.client.Clone()
	cfg.MinVersion, cfg.MaxVersion, cfg.ServerName = tls.VersionTLS12, tls.VersionTLS12, "node"
	conn, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		_ = conn.Close()
	}
	require.ErrorContains(t, err, "protocol version")
}

// TestConfigErrors checks that configs that cannot work are refused.
func TestConfigErrors(t *testing.T) {
	_, err := tcp.NewClient(tcp.ClientConfig{})
	require.ErrorContains(t, err, "Resolve is required")
	_, err = tcp.NewClient(tcp.ClientConfig{Resolve: tcp.StaticResolver(nil), MinBackoff: time.Second, MaxBackoff: time.Millisecond})
	require.Error(t, err)
	l := listen(t)
	defer l.Close()
	for _, cfg := range []tcp.ServerConfig{
		{MaxFrameBytes: transport.MaxFrameBytes + 1},
		{MaxInFlight: -1},
		{Roles: tcp.RoleClient},
		{FrameTimeout: -time.Second},
	} {
		_, err := tcp.Serve(l, echo{}, cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

// panicky panics on every read.
type panicky struct{ inner transport.Handler }

func (p panicky) Handle(req *transport.Request) *transport.Response {
	if req.Op == transport.OpRead {
		panic("boom")
	}
	return p.inner.Handle(req)
}

// TestHooksAndPanics checks that the hooks see connections, requests and
// failed handshakes, and that a handler that panics gets its request an
// error answer (wrapping transport.ErrRemote) and leaves the connection
// serving.
func TestHooksAndPanics(t *testing.T) {
	checkGoroutines(t)
	var opened, closed, failed, requests, errs atomic.Int32
	var tookSum atomic.Int64
	log := new(syncBuffer)
	_, addr := serve(t, "node", panicky{&transport.Server{Unit: storage.NewMemory()}}, plain(), func(c *tcp.ServerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
		c.Hooks = tcp.Hooks{
			ConnOpened:      func(string) { opened.Add(1) },
			ConnClosed:      func(string, error) { closed.Add(1) },
			HandshakeFailed: func(string, error) { failed.Add(1) },
			Request: func(op transport.Op, took time.Duration, err error) {
				requests.Add(1)
				tookSum.Add(int64(took))
				if err != nil {
					errs.Add(1)
				}
			},
		}
	})
	c, err := tcp.NewClient(tcp.ClientConfig{Resolve: tcp.StaticResolver(map[transport.NodeID]string{"node": addr})})
	require.NoError(t, err)
	u := transport.UnitClient{Caller: c, Node: "node"}
	ctx := context.Background()
	require.NoError(t, u.Write(ctx, 0, 1, []byte("x")))
	_, err = u.Read(ctx, 0, 1)
	require.ErrorIs(t, err, transport.ErrRemote)
	require.ErrorContains(t, err, "read handler failed")
	log.wait(t, "handler panicked")
	require.NoError(t, u.Fill(ctx, 0, 2), "the connection still serves")
	require.NoError(t, c.Close())

	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = nc.Write([]byte("not a hello at all"))
	require.NoError(t, err)
	_ = nc.Close()

	deadline := time.Now().Add(10 * time.Second)
	for (closed.Load() < 1 || failed.Load() < 1) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, int32(1), opened.Load())
	require.Equal(t, int32(1), closed.Load())
	require.Equal(t, int32(1), failed.Load())
	require.Equal(t, int32(3), requests.Load())
	require.Equal(t, int32(1), errs.Load())
	require.Positive(t, tookSum.Load())
}

// panickyWaits parks nothing: its Serve panics on every read that waits.
type panickyWaits struct{ transport.Handler }

func (panickyWaits) Serve(req *transport.Request, reply func(*transport.Response)) {
	panic("boom")
}

// TestAsyncHandlerPanics: a read that waits, served through an
// AsyncHandler's Serve, whose Serve panics, gets an error answer
// (transport.ErrRemote), as a request through Handle does, and the
// connection goes on serving.
func TestAsyncHandlerPanics(t *testing.T) {
	checkGoroutines(t)
	log := new(syncBuffer)
	_, addr := serve(t, "node", panickyWaits{&transport.Server{Unit: storage.NewMemory()}}, plain(), func(c *tcp.ServerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	c, err := tcp.NewClient(tcp.ClientConfig{Resolve: tcp.StaticResolver(map[transport.NodeID]string{"node": addr})})
	require.NoError(t, err)
	defer c.Close()
	u := transport.UnitClient{Caller: c, Node: "node"}
	ctx := context.Background()
	_, err = u.ReadWait(ctx, 0, 1, time.Second)
	require.ErrorIs(t, err, transport.ErrRemote)
	require.ErrorContains(t, err, "handler failed")
	log.wait(t, "handler panicked")
	require.NoError(t, u.Write(ctx, 0, 1, []byte("x")), "the connection still serves")
}
