package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
)

// clusterFile is what every daemon and every CLI call of one cluster
// shares: each node's network address, and the projection of epoch 0 (which
// the layout servers start from; later epochs live on the layout servers).
//
//	{
//	  "nodes": {"layout0": "10.0.0.1:7000", "seq": "10.0.0.2:7000", "unit0": "10.0.0.3:7000", ...},
//	  "layout": ["layout0", "layout1", "layout2"],
//	  "sequencer": "seq",
//	  "standbys": ["seq1"],
//	  "units": ["unit0", "unit1", "unit2", "unit3"],
//	  "replicas": 2,
//	  "spares": ["spare0"],
//	  "backpointers": 4
//	}
//
// units are taken replicas at a time into the chains of epoch 0's one
// segment. Standby sequencers and spare units run from the start, outside
// the projection, for a reconfiguration to bring in.
type clusterFile struct {
	Nodes        map[string]string `json:"nodes"`
	Layout       []string          `json:"layout"`
	Sequencer    string            `json:"sequencer"`
	Standbys     []string          `json:"standbys,omitempty"`
	Units        []string          `json:"units"`
	Replicas     int               `json:"replicas"`
	Spares       []string          `json:"spares,omitempty"`
	Backpointers int               `json:"backpointers,omitempty"`
}

// errClusterFile marks a cluster file that cannot describe a cluster.
var errClusterFile = errors.New("bad cluster file")

// readClusterFile reads and checks the cluster file at path.
func readClusterFile(path string) (*clusterFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c clusterFile
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w %s: %v", errClusterFile, path, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// write stores c at path, replacing what was there.
func (c *clusterFile) write(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// check reports the first thing that keeps c from describing a cluster.
func (c *clusterFile) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errClusterFile, fmt.Sprintf(format, args...))
	}
	if c.Backpointers < 0 || c.Backpointers > sequencer.MaxBackpointers {
		return bad("backpointers %d: want 0 (the default) to %d", c.Backpointers, sequencer.MaxBackpointers)
	}
	seen := map[string]string{}
	role := func(name, what string) error {
		if _, ok := c.Nodes[name]; !ok {
			return bad("%s %q has no address in nodes", what, name)
		}
		if prev, ok := seen[name]; ok {
			return bad("%q is both %s and %s", name, prev, what)
		}
		seen[name] = what
		return nil
	}
	if len(c.Layout) == 0 {
		return bad("no layout servers")
	}
	for _, n := range c.Layout {
		if err := role(n, "a layout server"); err != nil {
			return err
		}
	}
	if err := role(c.Sequencer, "the sequencer"); err != nil {
		return err
	}
	for _, n := range c.Standbys {
		if err := role(n, "a standby sequencer"); err != nil {
			return err
		}
	}
	if c.Replicas < 1 || len(c.Units) == 0 || len(c.Units)%c.Replicas != 0 {
		return bad("%d units in chains of %d replicas: want a positive multiple", len(c.Units), c.Replicas)
	}
	for _, n := range append(slices.Clone(c.Units), c.Spares...) {
		if err := role(n, "a unit"); err != nil {
			return err
		}
	}
	for _, n := range c.names() {
		if _, ok := seen[n]; !ok {
			return bad("node %q plays no role", n)
		}
		if c.Nodes[n] == "" {
			return bad("node %q has an empty address", n)
		}
	}
	_, err := c.projection()
	return err
}

// names returns every node's name, sorted.
func (c *clusterFile) names() []string {
	out := make([]string, 0, len(c.Nodes))
	for n := range c.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// projection returns the projection of epoch 0.
func (c *clusterFile) projection() (*projection.Projection, error) {
	p := &projection.Projection{Sequencer: projection.NodeID(c.Sequencer), Backpointers: c.backpointers()}
	for _, n := range c.Layout {
		p.Layout = append(p.Layout, projection.NodeID(n))
	}
	var seg projection.Segment
	for i, n := range c.Units {
		if i%c.Replicas == 0 {
			seg.Stripes = append(seg.Stripes, nil)
		}
		seg.Stripes[len(seg.Stripes)-1] = append(seg.Stripes[len(seg.Stripes)-1], projection.NodeID(n))
	}
	p.Segments = []projection.Segment{seg}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errClusterFile, err)
	}
	return p, nil
}

// roles returns what node plays in the cluster (none if it is not in it).
func (c *clusterFile) roles(node string) (unit, seq, layout bool) {
	unit = slices.Contains(c.Units, node) || slices.Contains(c.Spares, node)
	seq = node == c.Sequencer || slices.Contains(c.Standbys, node)
	layout = slices.Contains(c.Layout, node)
	return unit, seq, layout
}

// backpointers returns the cluster's backpointer count.
func (c *clusterFile) backpointers() int {
	if c.Backpointers == 0 {
		return sequencer.DefaultBackpointers
	}
	return c.Backpointers
}

// resolver returns a tcp.ClientConfig.Resolve over the cluster's addresses.
func (c *clusterFile) resolver() func(transport.NodeID) (string, error) {
	addrs := make(map[transport.NodeID]string, len(c.Nodes))
	for n, a := range c.Nodes {
		addrs[transport.NodeID(n)] = a
	}
	return tcp.StaticResolver(addrs)
}
