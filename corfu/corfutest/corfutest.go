// Package corfutest builds CORFU clusters in process, for tests, examples
// and embedding: layout servers, a sequencer and in-memory storage units,
// served by the same transport.Server that production uses, over the
// in-process network (which encodes and decodes every message) or, with
// NewTCP, over loopback TCP (plain, or mutual TLS 1.3) with the tcp
// transport.
//
// Setting the environment variable CORFU_TEST_NET to "tcp" or "tls" makes
// New build every cluster over loopback TCP, so that a test suite written
// against New runs over the network with no other change:
//
//	CORFU_TEST_NET=tcp go test ./corfu
package corfutest

import (
	"fmt"
	"os"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/inproc"
)

// Options shapes a cluster. The zero value gives 3 layout servers, a
// sequencer and 6 units in chains of 2.
type Options struct {
	Layouts      int // layout servers; default 3
	Units        int // storage units; default 6; a multiple of Replicas
	Replicas     int // replicas per chain; default 2
	Backpointers int // per stream; default sequencer.DefaultBackpointers
	Spares       int // extra units outside the projection, for reconfigurations to bring in
}

func (o *Options) fill() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Layouts, 3)
	def(&o.Units, 6)
	def(&o.Replicas, 2)
	def(&o.Backpointers, sequencer.DefaultBackpointers)
	if o.Layouts < 1 || o.Replicas < 1 || o.Units < o.Replicas || o.Units%o.Replicas != 0 || o.Backpointers < 1 || o.Spares < 0 {
		return fmt.Errorf("corfutest: bad options %+v: want Layouts >= 1, Units a positive multiple of Replicas", *o)
	}
	return nil
}

// Servers is a cluster's server state, before any network serves it.
type Servers struct {
	Options    Options
	Projection *projection.Projection // epoch 0: one open segment, units taken Replicas at a time
	Sequencer  *sequencer.Sequencer   // bootstrapped at epoch 0
	Layouts    []*projection.Acceptor // in Projection.Layout order
	Units      []*storage.Memory      // in UnitIDs order; the spares last
	UnitIDs    []projection.NodeID    // "unit0".. then the spares "spare0"..
}

// Build creates a cluster's servers: layout servers "layout0".., the
// sequencer "seq", units "unit0".. and spare units "spare0"...
func Build(o Options) (*Servers, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	s := &Servers{Options: o}
	p := &projection.Projection{Sequencer: "seq", Backpointers: o.Backpointers}
	for i := range o.Layouts {
		p.Layout = append(p.Layout, projection.NodeID(fmt.Sprintf("layout%d", i)))
	}
	seg := projection.Segment{}
	for i := range o.Units {
		id := projection.NodeID(fmt.Sprintf("unit%d", i))
		s.UnitIDs = append(s.UnitIDs, id)
		s.Units = append(s.Units, storage.NewMemory())
		if i%o.Replicas == 0 {
			seg.Stripes = append(seg.Stripes, nil)
		}
		seg.Stripes[len(seg.Stripes)-1] = append(seg.Stripes[len(seg.Stripes)-1], id)
	}
	p.Segments = []projection.Segment{seg}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s.Projection = p
	for i := range o.Spares {
		s.UnitIDs = append(s.UnitIDs, projection.NodeID(fmt.Sprintf("spare%d", i)))
		s.Units = append(s.Units, storage.NewMemory())
	}
	for range p.Layout {
		s.Layouts = append(s.Layouts, projection.NewAcceptor(p.Clone()))
	}
	s.Sequencer = sequencer.New(sequencer.Config{Backpointers: o.Backpointers, Incarnation: 1})
	if err := s.Sequencer.Bootstrap(0, 0, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// Handlers returns every node's ID and server, in a fixed order: layout
// servers, the sequencer, then the units.
func (s *Servers) Handlers() ([]projection.NodeID, []transport.Handler) {
	var ids []projection.NodeID
	var hs []transport.Handler
	for i, id := range s.Projection.Layout {
		ids, hs = append(ids, id), append(hs, &transport.Server{Layout: s.Layouts[i]})
	}
	ids, hs = append(ids, s.Projection.Sequencer), append(hs, &transport.Server{Sequencer: s.Sequencer})
	for i, id := range s.UnitIDs {
		ids, hs = append(ids, id), append(hs, &transport.Server{Unit: s.Units[i]})
	}
	return ids, hs
}

// Network is what a cluster's nodes are served over: an *inproc.Network,
// or loopback TCP (see NewTCP). Register serves a handler as a node (in
// place of the one it had: calls in progress finish with the old one);
// Remove takes a node off the network, so that later calls to it fail with
// an error wrapping transport.ErrUnreachable. Both are safe for concurrent
// use, as Call is.
type Network interface {
	transport.Caller
	Register(id projection.NodeID, h transport.Handler)
	Remove(id projection.NodeID)
}

// Cluster is a cluster served over a Network.
type Cluster struct {
	*Servers
	Net Network
	// close releases the network's resources; nil for an in-process one.
	close func() error
}

// NetEnv names the environment variable that makes New build clusters over
// loopback TCP: "tcp" for plain TCP, "tls" for mutual TLS. Any other
// non-empty value makes New fail.
const NetEnv = "CORFU_TEST_NET"

// New builds a cluster and registers its servers on a new in-process
// network, or on loopback TCP as NewTCP does if the environment variable
// NetEnv says so.
func New(o Options) (*Cluster, error) {
	switch v := os.Getenv(NetEnv); v {
	case "":
	case "tcp", "tls":
		return NewTCP(o, TCPOptions{TLS: v == "tls"})
	default:
		return nil, fmt.Errorf("corfutest: %s=%q: want tcp or tls", NetEnv, v)
	}
	s, err := Build(o)
	if err != nil {
		return nil, err
	}
	net := inproc.New()
	c := &Cluster{Servers: s, Net: net}
	ids, hs := s.Handlers()
	for i, id := range ids {
		net.Register(id, Host(hs[i]))
	}
	return c, nil
}

// Host returns h as a host serves it: a storage unit's server behind a
// transport.ReadWaits on the system clock, so that a follower's read waits
// at the unit for the next entry (see corfu.Client.Follow); any other
// handler as it is.
func Host(h transport.Handler) transport.Handler {
	if srv, ok := h.(*transport.Server); ok && srv.Unit != nil {
		return transport.NewReadWaits(srv, transport.SystemTimers{})
	}
	return h
}

// Close stops a cluster's servers and closes its connections; a cluster
// served in process has none, and Close does nothing. It returns the
// first error met. Calls made afterwards fail with an error wrapping
// transport.ErrUnreachable.
func (c *Cluster) Close() error {
	if c.close == nil {
		return nil
	}
	return c.close()
}

// Config returns a client configuration for the cluster: its layout
// servers, its network and its backpointer count. Other fields keep their
// defaults; set them before corfu.Open. The network is the cluster's and
// outlives the client: corfu.Client.Close does not close it (Cluster.Close
// does).
func (c *Cluster) Config() corfu.Config {
	return corfu.Config{
		Layout:       c.Projection.Layout,
		Transport:    c.Net,
		Backpointers: c.Options.Backpointers,
	}
}

// NewCaller returns a Caller of the cluster's nodes for one client to own:
// over TCP, one with connections of its own (a tcp.Client, its calls given
// TCPOptions.MinCallTimeout as the network's are), which corfu.Client.Close
// closes (it is an io.Closer); in process, the network itself, which has
// nothing to close. Cluster.Close does not close the Callers it returned.
func (c *Cluster) NewCaller() (transport.Caller, error) {
	if n, ok := c.Net.(*tcpNet); ok {
		cl, err := n.newClient()
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.callers = append(n.callers, cl)
		n.mu.Unlock()
		return &tcpCaller{c: cl, min: n.opts.MinCallTimeout}, nil
	}
	return c.Net, nil
}

// Unit returns the in-memory unit with the given ID, or nil.
func (c *Cluster) Unit(id projection.NodeID) *storage.Memory {
	for i, u := range c.UnitIDs {
		if u == id {
			return c.Units[i]
		}
	}
	return nil
}
