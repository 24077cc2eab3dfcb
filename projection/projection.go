package projection

import (
	"errors"
	"slices"

	"github.com/corfulog/corfu/storage"
)

// NodeID names a server: a storage unit, the sequencer or a layout server.
// It is any name unique in the cluster; the transport maps it to the node.
type NodeID string

// Chain is one replica chain, head first. A write goes to every replica in
// this order and is committed when the last (the tail) has it.
type Chain []NodeID

// Segment maps the global addresses [Start, End) onto Stripes: global address
// a lives on chain (a-Start) mod len(Stripes), at local address
// Base + (a-Start) / len(Stripes). End is 0 for the open-ended last segment.
type Segment struct {
	Start   storage.Address `json:"start"`
	End     storage.Address `json:"end,omitempty"`
	Base    storage.Address `json:"base"`
	Stripes []Chain         `json:"stripes"`
}

// Projection is the configuration of one epoch: who hands out tokens, who
// stores the projections, and which chains hold which addresses.
//
// A Projection is a plain value: methods that only read it are safe for
// concurrent use, and none of them modify it.
type Projection struct {
	Epoch     storage.Epoch `json:"epoch"`
	Sequencer NodeID        `json:"sequencer"`
	Layout    []NodeID      `json:"layout"`
	Segments  []Segment     `json:"segments"`
	// Proposal names the reconfiguration that proposed the projection (a
	// number it drew; zero for none). Two reconfigurations that propose
	// the same layout for one epoch thus propose different values, and
	// the one whose value is chosen, alone, knows it won and finishes the
	// epoch: the other may have seen another tail.
	Proposal uint64 `json:"proposal,omitempty"`
	// Backpointers is K, the number of addresses per stream that entries
	// record and the sequencer keeps: part of the projection, so that
	// every client of the log uses the same (see corfu.Config). Zero
	// leaves it to each client's configuration. It never changes from one
	// epoch to the next (ValidateNext).
	Backpointers int `json:"backpointers,omitempty"`
	// Resets lists, oldest first, the newest MaxResets epochs whose
	// sequencer started at a tail that may lie below tails reported before
	// (see Reset).
	Resets []Reset `json:"resets,omitempty"`
}

// Reset records an epoch whose reconfiguration could not learn the old
// sequencer's tail (the seal missed it, or it came back with no reservation
// mark), so its sequencer started at Tail, the tail the storage units
// bound: every address below Tail may hold something, but addresses from
// Tail on that were handed out and never written are handed out again. A
// reader that moved past Tail in an earlier epoch goes back to it; it
// returned nothing at or above Tail, since nothing was written there.
type Reset struct {
	Epoch storage.Epoch   `json:"epoch"`
	Tail  storage.Address `json:"tail"`
}

// MaxResets bounds Projection.Resets.
const MaxResets = 64

// Rewind returns where a reader at position pos, taken in epoch since,
// carries on under p: pos, or the tail of a reset after since that lies
// below it. (A reader more than MaxResets resets behind goes back to the
// lowest reset p still lists.)
func (p *Projection) Rewind(pos storage.Address, since storage.Epoch) storage.Address {
	for i, r := range p.Resets {
		if r.Epoch > since || i == 0 && len(p.Resets) == MaxResets {
			pos = min(pos, r.Tail)
		}
	}
	return pos
}

// Location is where one global address lives.
type Location struct {
	Segment int             // index into Projection.Segments
	Stripe  int             // index into Segment.Stripes
	Chain   Chain           // the replicas, head first
	Local   storage.Address // the address on each replica of Chain
}

// Bounds on the size of a projection. Validate rejects projections above
// them, and so does every decoder.
const (
	// MaxSegments is the largest number of segments in a projection.
	MaxSegments = 1 << 10
	// MaxStripes is the largest number of stripes in a segment.
	MaxStripes = 1 << 8
	// MaxReplicas is the largest number of replicas in a chain.
	MaxReplicas = 1 << 4
	// MaxLayoutServers is the largest number of layout servers.
	MaxLayoutServers = 1 << 4
	// MaxNodeIDBytes is the longest NodeID.
	MaxNodeIDBytes = 255
	// MaxBackpointers is the largest Backpointers.
	MaxBackpointers = 1 << 8
	// MaxJSONBytes is the largest JSON form Parse accepts.
	MaxJSONBytes = 1 << 20
)

var (
	// ErrInvalid reports a malformed projection; the wrapped message says
	// what is wrong.
	ErrInvalid = errors.New("projection: invalid")
	// ErrNoSegment reports a global address that no segment covers.
	ErrNoSegment = errors.New("projection: address outside every segment")
	// ErrStaleEpoch reports a projection whose epoch is not above the
	// current one.
	ErrStaleEpoch = errors.New("projection: epoch not above the current one")
)

// Clone returns a deep copy of p, sharing no memory with it. Clone of nil is
// nil.
func (p *Projection) Clone() *Projection {
	if p == nil {
		return nil
	}
	q := &Projection{
		Epoch:     p.Epoch,
		Sequencer: p.Sequencer,
		Layout:    slices.Clone(p.Layout),
		Proposal:  p.Proposal,
		Resets:    slices.Clone(p.Resets),

		Backpointers: p.Backpointers,
	}
	if p.Segments != nil {
		q.Segments = make([]Segment, len(p.Segments))
		for i, s := range p.Segments {
			q.Segments[i] = s.clone()
		}
	}
	return q
}

// clone returns a deep copy of s.
func (s Segment) clone() Segment {
	if s.Stripes != nil {
		stripes := make([]Chain, len(s.Stripes))
		for i, c := range s.Stripes {
			stripes[i] = slices.Clone(c)
		}
		s.Stripes = stripes
	}
	return s
}

// Equal reports whether p and q describe the same configuration. Nil and
// empty lists are equal, so a projection equals its JSON round trip. Two nil
// projections are equal; a nil and a non-nil one are not.
func (p *Projection) Equal(q *Projection) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Epoch == q.Epoch && p.Proposal == q.Proposal && slices.Equal(p.Resets, q.Resets) &&
		p.Backpointers == q.Backpointers &&
		p.Sequencer == q.Sequencer &&
		slices.Equal(p.Layout, q.Layout) &&
		slices.EqualFunc(p.Segments, q.Segments, Segment.equal)
}

// equal reports whether s and t are the same segment.
func (s Segment) equal(t Segment) bool {
	return s.Start == t.Start && s.End == t.End && s.Base == t.Base &&
		slices.EqualFunc(s.Stripes, t.Stripes, func(a, b Chain) bool { return slices.Equal(a, b) })
}

// Units returns every storage unit named in p's chains, sorted and without
// duplicates. The sequencer and the layout servers are not included unless
// they also serve as units.
func (p *Projection) Units() []NodeID {
	var units []NodeID
	for _, s := range p.Segments {
		for _, c := range s.Stripes {
			units = append(units, c...)
		}
	}
	slices.Sort(units)
	return slices.Compact(units)
}
