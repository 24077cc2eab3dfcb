package transport

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// maxWriteBytes is the largest payload a write request can carry: the frame
// less room for the other fields.
const maxWriteBytes = MaxFrameBytes - 64

// call sends req to node and returns the response, or the one error that
// Caller promises: the transport's, or the server's answer.
func call(ctx context.Context, c Caller, node NodeID, req *Request) (*Response, error) {
	resp, err := c.Call(ctx, node, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: no response from %s to %s", ErrMalformed, node, req.Op)
	}
	if resp.Err != nil {
		return nil, resp.Err
	}
	return resp, nil
}

// UnitClient is a storage.Unit served by the remote node Node, reached
// through Caller. Its methods return the unit's errors (as the storage
// package documents them) or the transport's: ctx's error, ErrUnreachable,
// ErrMalformed. A write too large to fit in a frame fails with an error
// wrapping storage.ErrTooLarge without being sent.
//
// A UnitClient is a plain value, safe for concurrent use if its Caller is.
type UnitClient struct {
	Caller Caller
	Node   NodeID
}

var _ storage.Unit = UnitClient{}

// Write stores data at addr on the unit; see storage.Unit.
func (u UnitClient) Write(ctx context.Context, epoch storage.Epoch, addr storage.Address, data []byte) error {
	if len(data) > maxWriteBytes {
		return fmt.Errorf("transport: write of %d bytes: %w", len(data), storage.ErrTooLarge)
	}
	_, err := call(ctx, u.Caller, u.Node, &Request{Op: OpWrite, Epoch: epoch, Addr: addr, Data: data})
	return err
}

// Read returns the data at addr on the unit; see storage.Unit. The slice is
// the caller's.
func (u UnitClient) Read(ctx context.Context, epoch storage.Epoch, addr storage.Address) ([]byte, error) {
	resp, err := call(ctx, u.Caller, u.Node, &Request{Op: OpRead, Epoch: epoch, Addr: addr})
	if err != nil {
		return nil, err
	}
	return resp.Data, nil
}

// Fill marks an unwritten addr on the unit as junk; see storage.Unit.
func (u UnitClient) Fill(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	_, err := call(ctx, u.Caller, u.Node, &Request{Op: OpFill, Epoch: epoch, Addr: addr})
	return err
}

// Trim lets the unit reclaim addr; see storage.Unit.
func (u UnitClient) Trim(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	_, err := call(ctx, u.Caller, u.Node, &Request{Op: OpTrim, Epoch: epoch, Addr: addr})
	return err
}

// PrefixTrim trims every address below addr on the unit; see storage.Unit.
func (u UnitClient) PrefixTrim(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	_, err := call(ctx, u.Caller, u.Node, &Request{Op: OpPrefixTrim, Epoch: epoch, Addr: addr})
	return err
}

// Seal seals the unit at epoch and returns its local tail; see storage.Unit.
func (u UnitClient) Seal(ctx context.Context, epoch storage.Epoch) (storage.Address, error) {
	resp, err := call(ctx, u.Caller, u.Node, &Request{Op: OpSeal, Epoch: epoch})
	if err != nil {
		return 0, err
	}
	return resp.Addr, nil
}

// Join lets a blank unit serve again, empty, at epoch; see storage.Memory.Join.
// A unit that cannot rejoin answers ErrWrongRole.
func (u UnitClient) Join(ctx context.Context, epoch storage.Epoch) error {
	_, err := call(ctx, u.Caller, u.Node, &Request{Op: OpJoin, Epoch: epoch})
	return err
}

// Repair replaces the record at addr on the unit with data (or junk) if
// the record there fails its checksum; see storage.Repairer. A unit that
// cannot repair answers ErrWrongRole. A repair too large to fit in a frame
// fails with an error wrapping storage.ErrTooLarge without being sent.
func (u UnitClient) Repair(ctx context.Context, epoch storage.Epoch, addr storage.Address, data []byte, junk bool) error {
	req := &Request{Op: OpRepair, Epoch: epoch, Addr: addr, Data: data}
	if junk {
		req.N, req.Data = repairJunk, nil
	} else if len(data) > maxWriteBytes {
		return fmt.Errorf("transport: repair of %d bytes: %w", len(data), storage.ErrTooLarge)
	}
	_, err := call(ctx, u.Caller, u.Node, req)
	return err
}

// repairJunk is an OpRepair request's N when it repairs with junk.
const repairJunk = 1

var _ storage.Repairer = UnitClient{}

// SequencerClient calls the sequencer on the remote node Node through
// Caller. Its methods return the sequencer's errors (as package sequencer
// documents them) or the transport's: ctx's error, ErrUnreachable,
// ErrMalformed.
//
// A SequencerClient is a plain value, safe for concurrent use if its Caller
// is.
type SequencerClient struct {
	Caller Caller
	Node   NodeID
}

// Next hands out n consecutive addresses for entries of streams; see
// sequencer.Sequencer.Next. A request that cannot go on the wire (n negative
// or above 32 bits, more than sequencer.MaxStreams streams) fails with an
// error wrapping sequencer.ErrInvalid without being sent.
func (c SequencerClient) Next(ctx context.Context, epoch storage.Epoch, n int, streams []sequencer.StreamID) (sequencer.Token, error) {
	if n < 0 || uint64(n) > math.MaxUint32 {
		return sequencer.Token{}, fmt.Errorf("transport: batch of %d tokens: %w", n, sequencer.ErrInvalid)
	}
	if len(streams) > sequencer.MaxStreams {
		return sequencer.Token{}, fmt.Errorf("transport: %d streams, limit %d: %w", len(streams), sequencer.MaxStreams, sequencer.ErrInvalid)
	}
	resp, err := call(ctx, c.Caller, c.Node, &Request{Op: OpToken, Epoch: epoch, N: uint32(n), Streams: streams})
	if err != nil {
		return sequencer.Token{}, err
	}
	return sequencer.Token{Start: resp.Addr, Backpointers: resp.Tails}, nil
}

// SealResult is what a sealed sequencer reports; see sequencer.SealResult.
type SealResult = sequencer.SealResult

// The bits of an OpSeqSeal response's Rank: two flags, and the
// incarnation above them.
const (
	sealLost     = 1 << 0 // SealResult.Lost
	sealNoMark   = 1 << 1 // SealResult.NoMark
	sealFlagBits = 2      // SealResult.Incarnation is Rank >> sealFlagBits
)

// Seal moves the sequencer to epoch, stops it and returns what a
// reconfiguration hands to the next sequencer; see sequencer.Sequencer.Seal.
func (c SequencerClient) Seal(ctx context.Context, epoch storage.Epoch) (SealResult, error) {
	resp, err := call(ctx, c.Caller, c.Node, &Request{Op: OpSeqSeal, Epoch: epoch})
	if err != nil {
		return SealResult{}, err
	}
	return SealResult{Tail: resp.Addr, Tails: resp.Tails, Lost: resp.Rank&sealLost != 0, NoMark: resp.Rank&sealNoMark != 0,
		Incarnation: resp.Rank >> sealFlagBits}, nil
}

// Bootstrap makes the sequencer ready in epoch with tail and the streams'
// recent addresses; see sequencer.Sequencer.Bootstrap. More than MaxTails
// tails, or a tail with more than MaxTailAddrs addresses, fails with an
// error wrapping sequencer.ErrInvalid without being sent.
//
// incarnation names the start of the sequencer that the caller sealed
// (SealResult.Incarnation; zero for any): a sequencer that restarted since
// refuses with sequencer.ErrRestarted.
func (c SequencerClient) Bootstrap(ctx context.Context, incarnation uint64, epoch storage.Epoch, tail storage.Address, tails []sequencer.StreamTail) error {
	if len(tails) > MaxTails {
		return fmt.Errorf("transport: %d stream tails, limit %d: %w", len(tails), MaxTails, sequencer.ErrInvalid)
	}
	for _, t := range tails {
		if len(t.Addrs) > MaxTailAddrs {
			return fmt.Errorf("transport: stream %d has %d addresses, limit %d: %w", t.Stream, len(t.Addrs), MaxTailAddrs, sequencer.ErrInvalid)
		}
	}
	_, err := call(ctx, c.Caller, c.Node, &Request{Op: OpBootstrap, Epoch: epoch, Addr: tail, Tails: tails, Rank: incarnation})
	return err
}

// LayoutClient calls the layout server (a projection.Acceptor) on the remote
// node Node through Caller. Its methods return the acceptor's errors (as
// package projection documents them) or the transport's: ctx's error,
// ErrUnreachable, ErrMalformed.
//
// A LayoutClient is a plain value, safe for concurrent use if its Caller is.
type LayoutClient struct {
	Caller Caller
	Node   NodeID
}

// Get returns the latest projection the layout server has committed. An
// answer without one is an error wrapping ErrMalformed.
func (c LayoutClient) Get(ctx context.Context) (*projection.Projection, error) {
	resp, err := call(ctx, c.Caller, c.Node, &Request{Op: OpGetLayout})
	if err != nil {
		return nil, err
	}
	if resp.Projection == nil {
		return nil, fmt.Errorf("%w: %s answered without a projection", ErrMalformed, c.Node)
	}
	return resp.Projection, nil
}

// Prepare is Paxos phase 1 for epoch at rank; see projection.Acceptor.Prepare.
// It returns the rank and value the server accepted for epoch (0 and nil if
// none); with projection.ErrRejected, the rank the server promised instead.
func (c LayoutClient) Prepare(ctx context.Context, epoch storage.Epoch, rank uint64) (acceptedRank uint64, accepted *projection.Projection, err error) {
	resp, err := c.Caller.Call(ctx, c.Node, &Request{Op: OpPrepare, Epoch: epoch, Rank: rank})
	if err != nil {
		if resp != nil && errors.Is(err, projection.ErrRejected) {
			return resp.Rank, nil, err // the rank promised instead
		}
		return 0, nil, err
	}
	if resp == nil {
		return 0, nil, fmt.Errorf("%w: no response from %s to %s", ErrMalformed, c.Node, OpPrepare)
	}
	return resp.Rank, resp.Projection, nil
}

// Propose is Paxos phase 2: it asks the server to accept p for epoch at
// rank; see projection.Acceptor.Propose. An invalid p (p.Validate) fails
// with its error, which wraps projection.ErrInvalid, without being sent.
func (c LayoutClient) Propose(ctx context.Context, epoch storage.Epoch, rank uint64, p *projection.Projection) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := call(ctx, c.Caller, c.Node, &Request{Op: OpPropose, Epoch: epoch, Rank: rank, Projection: p})
	return err
}

// Commit tells the server that p was chosen for its epoch; see
// projection.Acceptor.Commit. An invalid p fails with its error, which wraps
// projection.ErrInvalid, without being sent.
func (c LayoutClient) Commit(ctx context.Context, p *projection.Projection) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := call(ctx, c.Caller, c.Node, &Request{Op: OpCommit, Projection: p})
	return err
}
