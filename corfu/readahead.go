package corfu

import (
	"context"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// RangeBatch is how many addresses Range reads ahead with one request per
// unit.
const RangeBatch = 64

// readAhead holds the entries a Range read ahead: data[i] is the stored
// form of the entry at start+i, or nil if the batch did not find one
// there.
type readAhead struct {
	c          *Client
	start, end storage.Address
	data       [][]byte
}

// read returns the entry at a, from the entries read ahead if the batch
// found it, else as Read does. to bounds the read-ahead.
func (r *readAhead) read(ctx context.Context, a, to storage.Address) (Entry, error) {
	if a < r.start || a >= r.end {
		r.fill(ctx, a, min(to, a+RangeBatch))
	}
	if a >= r.start && a < r.end {
		if d := r.data[a-r.start]; d != nil {
			r.data[a-r.start] = nil
			c := r.c
			if len(c.hooks.read) == 0 {
				return decodeEntry(a, d)
			}
			e, err := decodeEntry(a, d)
			c.hooks.onRead(ReadEvent{Addr: a, Bytes: len(e.Data), Err: err})
			return e, err
		}
	}
	return r.c.Read(ctx, a)
}

// fill reads [from, to) ahead: one batched read per chain tail under the
// current projection, keeping only the entries found. A tail holds only
// committed entries, and nothing is ever written over an entry, so what
// it answers needs no other check (see read); everything else is left to
// Read.
func (r *readAhead) fill(ctx context.Context, from, to storage.Address) {
	c := r.c
	r.start, r.end = from, to
	r.data = make([][]byte, to-from)
	if to-from < 2 || ctx.Err() != nil {
		return // NB: one address: Read it
	}
	p := c.projection()
	var at byNode // of the offsets from from
	local := make([]storage.Address, to-from)
	for a := from; a < to; a++ {
		loc, err := p.Locate(a)
		if err != nil {
			continue
		}
		node := loc.Chain[len(loc.Chain)-1]
		if c.mut.ReadFromHead {
			node = loc.Chain[0] // mutant: trusts data not yet committed
		}
		at.add(node, int(a-from))
		local[a-from] = loc.Local
	}
	c.each("range read-ahead", len(at.nodes), func(g int) {
		addrs := make([]storage.Address, len(at.groups[g]))
		for j, i := range at.groups[g] {
			addrs[j] = local[i]
		}
		u := transport.UnitClient{Caller: hopCaller{c: c}, Node: at.nodes[g]}
		rs, err := u.ReadBatch(ctx, p.Epoch, addrs)
		if err != nil {
			return
		}
		for j, i := range at.groups[g] {
			if rs[j].Err == nil && rs[j].Data != nil {
				r.data[i] = rs[j].Data
			}
		}
	})
}

// byNode groups indexes by the node each goes to, the nodes in order of
// first appearance, so that a batch sends one request per node.
type byNode struct {
	nodes  []projection.NodeID
	groups [][]int
}

// add puts index i in node's group.
func (b *byNode) add(node projection.NodeID, i int) {
	g := slices.Index(b.nodes, node)
	if g < 0 {
		b.nodes = append(b.nodes, node)
		b.groups = append(b.groups, nil)
		g = len(b.nodes) - 1
	}
	b.groups[g] = append(b.groups[g], i)
}
