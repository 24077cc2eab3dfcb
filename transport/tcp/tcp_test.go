package tcp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/storagetest"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
	"github.com/corfulog/corfu/transport/tcp/tcptest"
	"github.com/corfulog/corfu/transport/transporttest"
)

// TestMain fails the run if any goroutine of the package outlives the
// tests: every test closes what it starts.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitGoroutines(5 * time.Second); leaked != "" {
			os.Stderr.WriteString("goroutines leaked:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitGoroutines waits up to d for every goroutine running code of package
// tcp to end, and returns the stacks of those left.
func waitGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "corfu/transport/tcp.") && !strings.Contains(g, "tcp_test.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutines fails t if, once its cleanups ran, more goroutines run
// than when it was called.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// listen returns a loopback listener.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

// security is a test's TLS setup: nil configs for plain TCP.
type security struct {
	server func(node transport.NodeID, roles tcp.Role) *tls.Config
	client *tls.Config
}

func plain() security {
	return security{server: func(transport.NodeID, tcp.Role) *tls.Config { return nil }}
}

func mutualTLS(t testing.TB) security {
	t.Helper()
	ca, err := tcptest.NewCA()
	require.NoError(t, err)
	cli, err := ca.ClientTLS("test-client")
	require.NoError(t, err)
	return security{
		server: func(node transport.NodeID, roles tcp.Role) *tls.Config {
			cfg, err := ca.ServerTLS(node, roles)
			require.NoError(t, err)
			return cfg
		},
		client: cli,
	}
}

// serve serves h as node on a loopback listener and returns the server and
// its address; the server closes at cleanup.
func serve(t testing.TB, node transport.NodeID, h transport.Handler, sec security, tune func(*tcp.ServerConfig)) (*tcp.Server, string) {
	t.Helper()
	// NB: Roles is left to be derived from h; the certificate grants
	// every server role.
	cfg := tcp.ServerConfig{Node: node}
	cfg.TLS = sec.server(node, tcp.RoleUnit|tcp.RoleSequencer|tcp.RoleLayout)
	if tune != nil {
		tune(&cfg)
	}
	l := listen(t)
	srv, err := tcp.Serve(l, h, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	return srv, l.Addr().String()
}

// client returns a client that finds nodes in addrs; it closes at cleanup.
func client(t testing.TB, addrs map[transport.NodeID]string, sec security, tune func(*tcp.ClientConfig)) *tcp.Client {
	t.Helper()
	cfg := tcp.ClientConfig{Resolve: tcp.StaticResolver(addrs), TLS: sec.client, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	c, err := tcp.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// newCaller serves h over loopback TCP for the conformance suites.
func newCaller(sec func(testing.TB) security) transporttest.NewCaller {
	return func(t *testing.T, h transport.Handler) (transport.Caller, transport.NodeID) {
		s := sec(t)
		_, addr := serve(t, "node", h, s, nil)
		return client(t, map[transport.NodeID]string{"node": addr}, s, nil), "node"
	}
}

func TestConformance(t *testing.T) {
	checkGoroutines(t)
	transporttest.Run(t, newCaller(func(testing.TB) security { return plain() }))
	transporttest.RunNetwork(t, newCaller(func(testing.TB) security { return plain() }))
}

func TestConformanceTLS(t *testing.T) {
	checkGoroutines(t)
	transporttest.Run(t, newCaller(mutualTLS))
	transporttest.RunNetwork(t, newCaller(mutualTLS))
}

func TestUnitClient(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Unit {
		_, addr := serve(t, "unit", &transport.Server{Unit: storage.NewMemory()}, plain(), nil)
		c := client(t, map[transport.NodeID]string{"unit": addr}, plain(), nil)
		return transport.UnitClient{Caller: c, Node: "unit"}
	})
}

func TestUnitClientTLS(t *testing.T) {
	sec := mutualTLS(t)
	storagetest.Run(t, func(t *testing.T) storage.Unit {
		_, addr := serve(t, "unit", &transport.Server{Unit: storage.NewMemory()}, sec, nil)
		c := client(t, map[transport.NodeID]string{"unit": addr}, sec, nil)
		return transport.UnitClient{Caller: c, Node: "unit"}
	})
}

// TestUnknownNode checks that a node the resolver does not know, or that
// nobody listens for, is unreachable, and that a failed dial is not
// retried before its backoff.
func TestUnknownNode(t *testing.T) {
	checkGoroutines(t)
	l := listen(t)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	c := client(t, map[transport.NodeID]string{"dead": dead}, plain(), func(c *tcp.ClientConfig) {
		c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour
	})
	ctx := context.Background()
	_, err := c.Call(ctx, "nobody", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)
	_, err = c.Call(ctx, "dead", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)
	_, err = c.Call(ctx, "dead", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)
	require.ErrorContains(t, err, "next in", "the second call fails at once, in the backoff")
}

// TestNotSent: a call to a node no connection can be made to fails with
// transport.ErrNotSent (and ErrUnreachable): the node never got it.
func TestNotSent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // NB: nothing listens there now
	c, err := tcp.NewClient(tcp.ClientConfig{Resolve: func(transport.NodeID) (string, error) { return addr, nil }})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Call(context.Background(), "gone", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrNotSent)
	require.ErrorIs(t, err, transport.ErrUnreachable)
}

// echoData answers every request with its address and data.
type echoData struct{}

func (echoData) Handle(req *transport.Request) *transport.Response {
	return &transport.Response{Addr: req.Addr, Data: req.Data}
}

// TestCallersComeAndGo runs callers over one connection that make a few
// calls each and leave, some giving up on a call at once (an ended ctx),
// while others start: the client holds a batch back while answered callers
// are still to run, and none of this may strand a request or mix up
// answers.
func TestCallersComeAndGo(t *testing.T) {
	_, addr := serve(t, "node", echoData{}, plain(), nil)
	c := client(t, map[transport.NodeID]string{"node": addr}, plain(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const waves, callers = 50, 48
	var next atomic.Uint64
	for range waves {
		var wg sync.WaitGroup
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 1 + g%5 {
					a := next.Add(1)
					req := &transport.Request{Op: transport.OpRead, Addr: storage.Address(a), Data: []byte(fmt.Sprint(a))}
					if (g+i)%7 == 3 {
						// NB: a ctx that ends about when the answer comes,
						// before or after it.
						short, cancel := context.WithTimeout(ctx, time.Duration(g)*time.Microsecond)
						_, _ = c.Call(short, "node", req)
						cancel()
						continue
					}
					resp, err := c.Call(ctx, "node", req)
					if err != nil {
						t.Errorf("call %d: %v", a, err)
						return
					}
					if resp.Addr != storage.Address(a) || string(resp.Data) != fmt.Sprint(a) {
						t.Errorf("call %d answered with %d %q", a, resp.Addr, resp.Data)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

// TestReadWaitParked parks a read over TCP: requests after it on the same
// connection are answered while it waits, and a write from another
// client answers it.
func TestReadWaitParked(t *testing.T) {
	checkGoroutines(t)
	waits := transport.NewReadWaits(&transport.Server{Unit: storage.NewMemory()}, transport.SystemTimers{})
	_, addr := serve(t, "unit", waits, plain(), nil)
	addrs := map[transport.NodeID]string{"unit": addr}
	reader := transport.UnitClient{Caller: client(t, addrs, plain(), nil), Node: "unit"}
	writer := transport.UnitClient{Caller: client(t, addrs, plain(), nil), Node: "unit"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	got := make(chan error, 1)
	var data []byte
	go func() {
		var err error
		data, err = reader.ReadWait(ctx, 0, 7, transport.MaxReadWait)
		got <- err
	}()
	require.Eventually(t, func() bool { return waits.Parked() == 1 }, 10*time.Second, time.Millisecond)
	// NB: the same connection serves on while the read waits.
	require.NoError(t, reader.Write(ctx, 0, 1, []byte("one")))
	b, err := reader.Read(ctx, 0, 1)
	require.NoError(t, err)
	require.Equal(t, "one", string(b))
	select {
	case err := <-got:
		t.Fatalf("answered before its address was written: %v", err)
	default:
	}

	require.NoError(t, writer.Write(ctx, 0, 7, []byte("seven")))
	require.NoError(t, <-got)
	require.Equal(t, "seven", string(data))

	_, err = reader.ReadWait(ctx, 0, 8, 5*time.Millisecond)
	require.ErrorIs(t, err, storage.ErrUnwritten, "the wait ends with the address free")
}

// TestReadWaitShutdown: a server shut down with reads parked answers them
// (with what the unit holds) once Release is called, and its Shutdown
// does not wait out their waits.
func TestReadWaitShutdown(t *testing.T) {
	checkGoroutines(t)
	waits := transport.NewReadWaits(&transport.Server{Unit: storage.NewMemory()}, transport.SystemTimers{})
	srv, addr := serve(t, "unit", waits, plain(), nil)
	u := transport.UnitClient{Caller: client(t, map[transport.NodeID]string{"unit": addr}, plain(), nil), Node: "unit"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 4
	got := make(chan error, n)
	for i := range n {
		go func() {
			_, err := u.ReadWait(ctx, 0, storage.Address(i), transport.MaxReadWait)
			got <- err
		}()
	}
	require.Eventually(t, func() bool { return waits.Parked() == n }, 10*time.Second, time.Millisecond)
	start := time.Now()
	waits.Release()
	require.NoError(t, srv.Shutdown(ctx))
	for range n {
		require.ErrorIs(t, <-got, storage.ErrUnwritten)
	}
	require.Less(t, time.Since(start), transport.MaxReadWait, "nothing waited out its wait")
}

// TestReadWaitCallerLeaves: a client that gives up on a parked read, and
// closes, leaves nothing behind when the read's answer comes.
func TestReadWaitCallerLeaves(t *testing.T) {
	checkGoroutines(t)
	waits := transport.NewReadWaits(&transport.Server{Unit: storage.NewMemory()}, transport.SystemTimers{})
	_, addr := serve(t, "unit", waits, plain(), nil)
	c, err := tcp.NewClient(tcp.ClientConfig{Resolve: tcp.StaticResolver(map[transport.NodeID]string{"unit": addr})})
	require.NoError(t, err)
	u := transport.UnitClient{Caller: c, Node: "unit"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := u.ReadWait(ctx, 0, 3, transport.MaxReadWait)
		done <- err
	}()
	require.Eventually(t, func() bool { return waits.Parked() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, c.Close())
	// The write answers the read on a connection that is gone.
	w := transport.UnitClient{Caller: client(t, map[transport.NodeID]string{"unit": addr}, plain(), nil), Node: "unit"}
	require.NoError(t, w.Write(context.Background(), 0, 3, []byte("late")))
	require.Zero(t, waits.Parked())
}
