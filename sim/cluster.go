package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ClusterConfig shapes a simulated cluster; see corfutest.Options. Its zero
// value is 3 layout servers, a sequencer and 6 units in chains of 2.
type ClusterConfig = corfutest.Options

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Cluster is a CORFU deployment inside the simulator: layout servers, a
// sequencer and storage units, each a node of the simulated network serving
// the same transport.Server that production uses.
type Cluster struct {
	*corfutest.Servers
	Sched   *Scheduler
	Net     *Network
	Monitor *Monitor

	// committed lists every projection the layout servers committed, in
	// epoch order, for translating units' local addresses to global ones.
	committed []*projection.Projection
	clients   int
}

// NewCluster builds a cluster on s and net. Every node's server is wrapped
// so the cluster's Monitor sees each replica write and fill and each token.
func NewCluster(s *Scheduler, net *Network, cfg ClusterConfig) (*Cluster, error) {
	servers, err := corfutest.Build(cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Servers: servers, Sched: s, Net: net, Monitor: NewMonitor(),
		committed: []*projection.Projection{servers.Projection}}
	ids, hs := servers.Handlers()
	for i, id := range ids {
		net.AddNode(id, &observed{inner: hs[i], c: c, node: id})
	}
	return c, nil
}

// Client opens a client on its own network node, with its own random
// sub-stream. It must run inside a task of the cluster's scheduler. cfg's
// Layout, Transport, Env and Backpointers are set by the cluster.
func (c *Cluster) Client(ctx context.Context, cfg corfu.Config) (*corfu.Client, error) {
	c.clients++
	name := fmt.Sprintf("client%d", c.clients)
	cfg.Layout = c.Projection.Layout
	cfg.Transport = c.Net.Caller(projection.NodeID(name))
	cfg.Env = c.Sched.Env(name)
	cfg.Backpointers = c.Options.Backpointers
	return corfu.Open(ctx, cfg)
}

// global maps a unit's local address to the global address, through the
// newest committed projection that places the unit's local address in one
// of its segments. A node's local ranges never overlap across segments, and
// a closed segment keeps its mapping in every later projection.
func (c *Cluster) global(node projection.NodeID, local storage.Address) (storage.Address, bool) {
	for i := len(c.committed) - 1; i >= 0; i-- {
		p := c.committed[i]
		for si, seg := range p.Segments {
			k := storage.Address(len(seg.Stripes))
			if local < seg.Base || seg.End != 0 && local >= seg.Base+(seg.End-seg.Start+k-1)/k {
				continue
			}
			for ci, chain := range seg.Stripes {
				if slices.Contains(chain, node) {
					g, err := p.Global(si, ci, local)
					return g, err == nil
				}
			}
		}
	}
	return 0, false
}

// Latest returns the newest projection the layout servers committed.
func (c *Cluster) Latest() *projection.Projection { return c.committed[len(c.committed)-1] }

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
	case transport.OpCommit:
		if p := req.Projection; p != nil && p.Epoch > o.c.Latest().Epoch {
			o.c.committed = append(o.c.committed, p.Clone())
		}
	case transport.OpToken:
		if req.N > 0 {
			m.Tokens(req.Epoch, resp.Addr, int(req.N))
		}
	}
	return resp
}
