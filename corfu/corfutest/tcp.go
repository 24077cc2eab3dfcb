package corfutest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
	"github.com/corfulog/corfu/transport/tcp/tcptest"
)

// TCPOptions shapes how NewTCP serves a cluster.
type TCPOptions struct {
	// TLS secures every connection with mutual TLS 1.3: each node has a
	// certificate naming it and granting every server role, and clients
	// one granting the client role, all from a throwaway authority.
	TLS bool
	// Logger receives the transport's records. Default: discard.
	Logger *slog.Logger
	// MinCallTimeout is the least time a call over the network is given:
	// one whose ctx would end sooner runs for this long instead (a
	// cancellation of its ctx still ends it at once). Tests tune their
	// clients' RPC timeouts to the in-process network, where a hop takes
	// microseconds; over loopback TCP (or TLS, with a first call's
	// handshake) under the race detector on a busy machine, a hop can
	// take tens of milliseconds, and a test would see timeouts no fault
	// of its own caused. A fault a test injects above the network (a
	// request that hangs until its ctx ends) keeps the ctx's own deadline.
	// Default DefaultMinCallTimeout; negative for none.
	MinCallTimeout time.Duration
}

// DefaultMinCallTimeout is TCPOptions.MinCallTimeout's default.
const DefaultMinCallTimeout = time.Second

// NewTCP builds a cluster as New does and serves each node on its own
// loopback listener (127.0.0.1, a port of the system's choice) with the
// tcp transport. Cluster.Net calls the nodes through one tcp.Client; a node
// registered again after Remove listens on its old port if it can. Calls
// through Cluster.Net and NewCaller's Callers are given at least
// TCPOptions.MinCallTimeout, however short their ctx's deadline. Close the
// cluster to stop its servers.
func NewTCP(o Options, t TCPOptions) (*Cluster, error) {
	s, err := Build(o)
	if err != nil {
		return nil, err
	}
	n := &tcpNet{
		opts:  t,
		nodes: make(map[projection.NodeID]*tcpNode),
		addrs: make(map[projection.NodeID]string),
	}
	if n.opts.Logger == nil {
		n.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if n.opts.MinCallTimeout == 0 {
		n.opts.MinCallTimeout = DefaultMinCallTimeout
	}
	var clientTLS *tls.Config
	if t.TLS {
		if n.ca, err = tcptest.NewCA(); err != nil {
			return nil, err
		}
		if clientTLS, err = n.ca.ClientTLS("corfutest"); err != nil {
			return nil, err
		}
	}
	n.clientTLS = clientTLS
	if n.client, err = n.newClient(); err != nil {
		return nil, err
	}
	c := &Cluster{Servers: s, Net: n, close: n.close}
	ids, hs := s.Handlers()
	for i, id := range ids {
		if err := n.serve(id, Host(hs[i])); err != nil {
			_ = n.close()
			return nil, err
		}
	}
	// NB: connect now, so that a test's first calls do not wait for the
	// handshakes (slow with TLS under the race detector) and time out.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range ids {
		if err := n.client.Connect(ctx, id); err != nil {
			_ = n.close()
			return nil, err
		}
	}
	return c, nil
}

// tcpNet is a Network over loopback TCP.
type tcpNet struct {
	opts      TCPOptions
	ca        *tcptest.CA // nil without TLS
	clientTLS *tls.Config // nil without TLS
	client    *tcp.Client

	mu      sync.Mutex
	callers []*tcp.Client                  // the clients of NewCaller
	nodes   map[projection.NodeID]*tcpNode // the nodes being served
	addrs   map[projection.NodeID]string   // every node's last address, kept after Remove
	closed  bool
}

// tcpNode is one node's server; its handler can be replaced in place.
type tcpNode struct {
	srv *tcp.Server
	h   *swapHandler
}

// swapHandler serves with whichever handler was stored last.
type swapHandler struct {
	h atomic.Pointer[transport.Handler]
}

func (s *swapHandler) Handle(req *transport.Request) *transport.Response {
	return (*s.h.Load()).Handle(req)
}

// Serve serves req with the handler's Serve, if it is a
// transport.AsyncHandler, and as Handle does otherwise.
func (s *swapHandler) Serve(req *transport.Request, reply func(*transport.Response)) {
	h := *s.h.Load()
	if ah, ok := h.(transport.AsyncHandler); ok {
		ah.Serve(req, reply)
		return
	}
	reply(h.Handle(req))
}

var _ Network = (*tcpNet)(nil)

func (n *tcpNet) Call(ctx context.Context, to projection.NodeID, req *transport.Request) (*transport.Response, error) {
	return callAtLeast(ctx, n.client, to, req, n.opts.MinCallTimeout)
}

// callAtLeast calls to through c, giving the call at least min: if ctx
// would end sooner by its deadline, the call runs under a ctx that ends
// min from now or when ctx is cancelled. A call that runs out of time
// fails with context.DeadlineExceeded either way.
func callAtLeast(ctx context.Context, c *tcp.Client, to projection.NodeID, req *transport.Request, min time.Duration) (*transport.Response, error) {
	dl, ok := ctx.Deadline()
	if !ok || min <= 0 || ctx.Err() != nil || time.Until(dl) >= min {
		return c.Call(ctx, to, req)
	}
	longer, cancel := context.WithTimeout(context.WithoutCancel(ctx), min)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	return c.Call(longer, to, req)
}

// tcpCaller is a Caller with connections of its own (see
// Cluster.NewCaller); Close closes them.
type tcpCaller struct {
	c   *tcp.Client
	min time.Duration
}

func (c *tcpCaller) Call(ctx context.Context, to projection.NodeID, req *transport.Request) (*transport.Response, error) {
	return callAtLeast(ctx, c.c, to, req, c.min)
}

func (c *tcpCaller) Close() error { return c.c.Close() }

// newClient returns a client of the network's nodes. Its backoff is short:
// tests take nodes off the network and put them back.
func (n *tcpNet) newClient() (*tcp.Client, error) {
	return tcp.NewClient(tcp.ClientConfig{
		Resolve:    n.resolve,
		TLS:        n.clientTLS,
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
		Logger:     n.opts.Logger,
	})
}

func (n *tcpNet) resolve(node projection.NodeID) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[node]; !ok {
		return "", fmt.Errorf("corfutest: node %s is not on the network", node)
	}
	return n.addrs[node], nil
}

// Register serves h as node id, in place of the handler id had. A node
// back on the network is called at once, as in process: its clients do
// not wait out the backoff of their failed dials to it.
func (n *tcpNet) Register(id projection.NodeID, h transport.Handler) {
	if err := n.serve(id, h); err != nil {
		panic(fmt.Sprintf("corfutest: serving %s: %v", id, err)) // NB: loopback listeners do not fail
	}
	n.mu.Lock()
	clients := append([]*tcp.Client{n.client}, n.callers...)
	n.mu.Unlock()
	for _, c := range clients {
		c.Redial(id)
	}
}

func (n *tcpNet) serve(id projection.NodeID, h transport.Handler) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("corfutest: network closed")
	}
	if nd := n.nodes[id]; nd != nil {
		nd.h.h.Store(&h)
		return nil
	}
	var l net.Listener
	var err error
	if addr := n.addrs[id]; addr != "" {
		l, err = net.Listen("tcp", addr)
	}
	if l == nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	cfg := tcp.ServerConfig{Node: id, Logger: n.opts.Logger, DrainTimeout: 5 * time.Second}
	if n.ca != nil {
		if cfg.TLS, err = n.ca.ServerTLS(id, tcp.RoleUnit|tcp.RoleSequencer|tcp.RoleLayout); err != nil {
			_ = l.Close()
			return err
		}
	}
	sh := new(swapHandler)
	sh.h.Store(&h)
	srv, err := tcp.Serve(l, sh, cfg)
	if err != nil {
		_ = l.Close()
		return err
	}
	n.nodes[id] = &tcpNode{srv: srv, h: sh}
	n.addrs[id] = l.Addr().String()
	return nil
}

// Remove stops serving node id: calls in progress finish, later ones fail.
func (n *tcpNet) Remove(id projection.NodeID) {
	n.mu.Lock()
	nd := n.nodes[id]
	delete(n.nodes, id)
	n.mu.Unlock()
	if nd != nil {
		_ = nd.srv.Close()
	}
}

func (n *tcpNet) close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	nodes := n.nodes
	n.nodes = map[projection.NodeID]*tcpNode{}
	n.mu.Unlock()
	err := n.client.Close()
	for _, nd := range nodes {
		err = errors.Join(err, nd.srv.Close())
	}
	return err
}
