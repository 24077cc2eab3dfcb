package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ClusterConfig shapes a simulated cluster. Its zero value is the default:
// 3 layout servers, a sequencer and 6 units in chains of 2.
type ClusterConfig struct {
	Layouts      int // layout servers; default 3
	Units        int // storage units; default 6; a multiple of Replicas
	Replicas     int // replicas per chain; default 2
	Backpointers int // per stream, sequencer and clients; default sequencer.DefaultBackpointers
}

func (c *ClusterConfig) fill() error {
	setDefault(&c.Layouts, 3)
	setDefault(&c.Units, 6)
	setDefault(&c.Replicas, 2)
	setDefault(&c.Backpointers, sequencer.DefaultBackpointers)
	if c.Layouts < 1 || c.Replicas < 1 || c.Units < c.Replicas || c.Units%c.Replicas != 0 || c.Backpointers < 1 {
		return fmt.Errorf("sim: bad cluster config %+v", *c)
	}
	return nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Cluster is a CORFU deployment inside the simulator: layout servers, a
// sequencer and storage units, each a node of the simulated network serving
// the same transport.Server that production uses.
type Cluster struct {
	Config     ClusterConfig
	Sched      *Scheduler
	Net        *Network
	Projection *projection.Projection // the initial projection
	Units      map[projection.NodeID]*storage.Memory
	Sequencer  *sequencer.Sequencer
	Layouts    []*projection.Acceptor
	Monitor    *Monitor

	unitNames []projection.NodeID
	clients   int
}

// NewCluster builds a cluster on s and net: epoch 0, one open segment whose
// stripes are the units taken Replicas at a time, a bootstrapped sequencer.
func NewCluster(s *Scheduler, net *Network, cfg ClusterConfig) (*Cluster, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Cluster{Config: cfg, Sched: s, Net: net, Units: map[projection.NodeID]*storage.Memory{}, Monitor: NewMonitor()}
	p := &projection.Projection{Sequencer: "seq"}
	for i := range cfg.Layouts {
		p.Layout = append(p.Layout, projection.NodeID(fmt.Sprintf("layout%d", i)))
	}
	seg := projection.Segment{}
	for i := range cfg.Units {
		id := projection.NodeID(fmt.Sprintf("unit%d", i))
		c.unitNames = append(c.unitNames, id)
		if i%cfg.Replicas == 0 {
			seg.Stripes = append(seg.Stripes, nil)
		}
		seg.Stripes[len(seg.Stripes)-1] = append(seg.Stripes[len(seg.Stripes)-1], id)
	}
	p.Segments = []projection.Segment{seg}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c.Projection = p

	for _, id := range p.Layout {
		a := projection.NewAcceptor(p.Clone())
		c.Layouts = append(c.Layouts, a)
		net.AddNode(id, &transport.Server{Layout: a})
	}
	c.Sequencer = sequencer.New(sequencer.Config{Backpointers: cfg.Backpointers})
	if err := c.Sequencer.Bootstrap(0, 0, nil); err != nil {
		return nil, err
	}
	net.AddNode(p.Sequencer, &observed{inner: &transport.Server{Sequencer: c.Sequencer}, c: c})
	for _, id := range c.unitNames {
		u := storage.NewMemory()
		c.Units[id] = u
		net.AddNode(id, &observed{inner: &transport.Server{Unit: u}, c: c, node: id})
	}
	return c, nil
}

// UnitNames returns the units' IDs in order.
func (c *Cluster) UnitNames() []projection.NodeID { return c.unitNames }

// Client opens a client on its own network node. It must run inside a task
// of the cluster's scheduler. cfg's Layout, Transport, Env and Backpointers
// are set by the cluster; other fields are kept.
func (c *Cluster) Client(ctx context.Context, cfg corfu.Config) (*corfu.Client, error) {
	c.clients++
	name := fmt.Sprintf("client%d", c.clients)
	cfg.Layout = c.Projection.Layout
	cfg.Transport = c.Net.Caller(projection.NodeID(name))
	cfg.Env = c.Sched.Env(name)
	cfg.Backpointers = c.Config.Backpointers
	return corfu.Open(ctx, cfg)
}

// global maps a unit's local address to the global address, through the
// initial projection.
func (c *Cluster) global(node projection.NodeID, local storage.Address) (storage.Address, bool) {
	for si, seg := range c.Projection.Segments {
		for ci, chain := range seg.Stripes {
			for _, n := range chain {
				if n == node {
					g, err := c.Projection.Global(si, ci, local)
					return g, err == nil
				}
			}
		}
	}
	return 0, false
}

// observed reports what a node's server did to the cluster's Monitor: every
// replica write and fill it accepted, and every token it handed out. It sits
// at the network boundary, outside the protocol code.
type observed struct {
	inner transport.Handler
	c     *Cluster
	node  projection.NodeID
}

func (o *observed) Handle(req *transport.Request) *transport.Response {
	resp := o.inner.Handle(req)
	if resp.Err != nil {
		return resp
	}
	m := o.c.Monitor
	switch req.Op {
	case transport.OpWrite:
		if g, ok := o.c.global(o.node, req.Addr); ok {
			m.Stored(g, o.node, req.Data)
		}
	case transport.OpFill:
		if g, ok := o.c.global(o.node, req.Addr); ok {
			m.Filled(g, o.node)
		}
	case transport.OpToken:
		if req.N > 0 {
			m.Tokens(req.Epoch, resp.Addr, int(req.N))
		}
	}
	return resp
}
