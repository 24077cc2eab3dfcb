package projection

import (
	"errors"

	"github.com/corfulog/corfu/storage"
)

// NodeID names a server: a storage unit, the sequencer or a layout server.
// Over TCP it is the server's address; in process it is any unique name.
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
type Projection struct {
	Epoch     storage.Epoch `json:"epoch"`
	Sequencer NodeID        `json:"sequencer"`
	Layout    []NodeID      `json:"layout"`
	Segments  []Segment     `json:"segments"`
}

// Location is where one global address lives.
type Location struct {
	Segment int             // index into Projection.Segments
	Stripe  int             // index into Segment.Stripes
	Chain   Chain           // the replicas, head first
	Local   storage.Address // the address on each replica of Chain
}

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
