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
}

// NewTCP builds a cluster as New does and serves each node on its own
// loopback listener (127.0.0.1, a port of the system's choice) with the
// tcp transport. Cluster.Net calls the nodes through one tcp.Client; a node
// registered again after Remove listens on its old port if it can. Close
// the cluster to stop its servers.
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
		if err := n.serve(id, hs[i]); err != nil {
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

	mu     sync.Mutex
	nodes  map[projection.NodeID]*tcpNode // the nodes being served
	addrs  map[projection.NodeID]string   // every node's last address, kept after Remove
	closed bool
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

var _ Network = (*tcpNet)(nil)

func (n *tcpNet) Call(ctx context.Context, to projection.NodeID, req *transport.Request) (*transport.Response, error) {
	return n.client.Call(ctx, to, req)
}

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

// Register serves h as node id, in place of the handler id had.
func (n *tcpNet) Register(id projection.NodeID, h transport.Handler) {
	if err := n.serve(id, h); err != nil {
		panic(fmt.Sprintf("corfutest: serving %s: %v", id, err)) // NB: loopback listeners do not fail
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
