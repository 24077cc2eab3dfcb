package transport

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// NodeID names a server; see projection.NodeID.
type NodeID = projection.NodeID

// Op is a request's operation code. The role that serves it follows from it.
type Op uint8

// The operations of the three services.
const (
	// Storage unit.
	OpWrite      Op = 1  // Epoch, Addr, Data
	OpRead       Op = 2  // Epoch, Addr -> Data
	OpFill       Op = 3  // Epoch, Addr
	OpTrim       Op = 4  // Epoch, Addr
	OpPrefixTrim Op = 5  // Epoch, Addr
	OpSeal       Op = 6  // Epoch -> Addr (the unit's local tail)
	OpJoin       Op = 7  // Epoch: a blank unit serves again, empty, at Epoch
	OpRepair     Op = 8  // Epoch, Addr, Data, N (1: junk): replaces a record that fails its checksum
	OpWriteBatch Op = 9  // Epoch, N (items), Data (AppendWriteBatch) -> Data (AppendBatchErrors)
	OpReadBatch  Op = 10 // Epoch, N (items), Data (AppendReadBatch) -> Data (AppendReadResults)
	OpReadWait   Op = 11 // Epoch, Addr, N (the longest wait, in ms) -> Data: a read that waits for an unwritten address (see ReadWaits)

	// Sequencer.
	OpToken     Op = 16 // Epoch, N, Streams -> Addr (token start), Tails (backpointers)
	OpBootstrap Op = 17 // Epoch, Addr (tail), Tails
	OpSeqSeal   Op = 18 // Epoch -> Addr (the sequencer's tail), Tails (every stream's), Rank (bit 0: lost its state; bit 1: and has no mark)

	// Layout server.
	OpGetLayout Op = 32 // -> Projection (the latest committed)
	OpPrepare   Op = 33 // Epoch, Rank -> Rank (accepted rank), Projection (accepted value, if any)
	OpPropose   Op = 34 // Epoch, Rank, Projection
	OpCommit    Op = 35 // Projection
	OpReport    Op = 36 // Data (a report: its reporter's name, then a body) -> Data (every report held; see Board)
)

// String returns the operation's name, or "op(N)" for an unknown code.
func (op Op) String() string {
	switch op {
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	case OpFill:
		return "fill"
	case OpTrim:
		return "trim"
	case OpPrefixTrim:
		return "prefix-trim"
	case OpSeal:
		return "seal"
	case OpJoin:
		return "join"
	case OpRepair:
		return "repair"
	case OpWriteBatch:
		return "write-batch"
	case OpReadBatch:
		return "read-batch"
	case OpReadWait:
		return "read-wait"
	case OpToken:
		return "token"
	case OpBootstrap:
		return "bootstrap"
	case OpSeqSeal:
		return "sequencer-seal"
	case OpGetLayout:
		return "get-layout"
	case OpPrepare:
		return "prepare"
	case OpPropose:
		return "propose"
	case OpCommit:
		return "commit"
	case OpReport:
		return "report"
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// Valid reports whether op is one of the defined operations.
func (op Op) Valid() bool {
	switch op {
	case OpWrite, OpRead, OpFill, OpTrim, OpPrefixTrim, OpSeal, OpJoin, OpRepair, OpWriteBatch, OpReadBatch, OpReadWait,
		OpToken, OpBootstrap, OpSeqSeal,
		OpGetLayout, OpPrepare, OpPropose, OpCommit, OpReport:
		return true
	}
	return false
}

// Request is one message from a client to a server. Only the fields its Op
// lists are meaningful; the codec carries the others as zero.
type Request struct {
	Op         Op
	Epoch      storage.Epoch
	Addr       storage.Address
	Data       []byte
	N          uint32
	Rank       uint64
	Streams    []sequencer.StreamID
	Tails      []sequencer.StreamTail
	Projection *projection.Projection
}

// Response is a server's answer. Err is nil on success; otherwise it is one
// of the sentinel errors of the storage, sequencer and projection packages
// (or a *storage.SealedError), carried over the wire by code so that errors.Is
// gives the same answer over every transport.
type Response struct {
	Err        error
	Addr       storage.Address
	Data       []byte
	Rank       uint64
	Tails      []sequencer.StreamTail
	Projection *projection.Projection
}

// Caller sends a request to a server and waits for its response, or for ctx.
//
// Call returns the transport's error (ctx's error, ErrUnreachable, a codec
// error) or, when the server answered, resp.Err; so a caller checks one
// error. Implementations are safe for concurrent use.
type Caller interface {
	Call(ctx context.Context, to NodeID, req *Request) (*Response, error)
}

// Handler serves requests synchronously. A Server is the usual Handler.
type Handler interface {
	Handle(req *Request) *Response
}

// AsyncHandler is a Handler that may answer a request after Serve has
// returned: a read that waits for an entry (OpReadWait, see ReadWaits).
// Serve calls reply exactly once with the answer: before it returns, or
// later from another goroutine (in the simulator, another event or task).
// A host that can send an answer late calls Serve instead of Handle; the
// simulator, the in-process network and the TCP server all do.
type AsyncHandler interface {
	Handler
	Serve(req *Request, reply func(*Response))
}
