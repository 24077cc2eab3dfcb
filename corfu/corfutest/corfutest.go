// Package corfutest builds CORFU clusters in process, for tests, examples
// and embedding: layout servers, a sequencer and in-memory storage units,
// served by the same transport.Server that production uses, over the
// in-process network (which encodes and decodes every message).
package corfutest

import (
	"fmt"

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
	p := &projection.Projection{Sequencer: "seq"}
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

// Cluster is a cluster served over an in-process network.
type Cluster struct {
	*Servers
	Net *inproc.Network
}

// New builds a cluster and registers its servers on a new in-process
// network.
func New(o Options) (*Cluster, error) {
	s, err := Build(o)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Servers: s, Net: inproc.New()}
	ids, hs := s.Handlers()
	for i, id := range ids {
		c.Net.Register(id, hs[i])
	}
	return c, nil
}

// Config returns a client configuration for the cluster: its layout
// servers, its network and its backpointer count. Other fields keep their
// defaults; set them before corfu.Open.
func (c *Cluster) Config() corfu.Config {
	return corfu.Config{
		Layout:       c.Projection.Layout,
		Transport:    c.Net,
		Backpointers: c.Options.Backpointers,
	}
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
