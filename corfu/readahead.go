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
	var nodes []projection.NodeID
	var groups [][]storage.Address // the global addresses each node serves
	var locals [][]storage.Address
	for a := from; a < to; a++ {
		loc, err := p.Locate(a)
		if err != nil {
			continue
		}
		node := loc.Chain[len(loc.Chain)-1]
		if c.mut.ReadFromHead {
			node = loc.Chain[0] // mutant: trusts data not yet committed
		}
		g := slices.Index(nodes, node)
		if g < 0 {
			nodes = append(nodes, node)
			groups, locals = append(groups, nil), append(locals, nil)
			g = len(nodes) - 1
		}
		groups[g] = append(groups[g], a)
		locals[g] = append(locals[g], loc.Local)
	}
	c.each("range read-ahead", len(nodes), func(g int) {
		u := transport.UnitClient{Caller: hopCaller{c}, Node: nodes[g]}
		rs, err := u.ReadBatch(ctx, p.Epoch, locals[g])
		if err != nil {
			return
		}
		for j, a := range groups[g] {
			if rs[j].Err == nil && rs[j].Data != nil {
				r.data[a-from] = rs[j].Data
			}
		}
	})
}
