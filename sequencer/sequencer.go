package sequencer

import (
	"errors"

	"github.com/corfulog/corfu/storage"
)

// StreamID names a stream: a sub-log of the shared log whose entries are
// linked by backpointers.
type StreamID uint64

// DefaultBackpointers is the number of recent addresses the sequencer keeps
// per stream when Config.Backpointers is zero.
const DefaultBackpointers = 4

// MaxBatch is the largest number of tokens one Next call hands out.
const MaxBatch = 1 << 16

// MaxStreams is the largest number of streams one Next call may name.
const MaxStreams = 64

var (
	// ErrNotReady reports that the sequencer has not been bootstrapped in
	// the request's epoch (or at all) and hands out no tokens yet.
	ErrNotReady = errors.New("sequencer: not bootstrapped in this epoch")
	// ErrInvalid reports a malformed request: a batch above MaxBatch, too
	// many streams, or a stream named twice.
	ErrInvalid = errors.New("sequencer: invalid request")
)

// StreamTail is the most recent addresses of one stream, newest first.
type StreamTail struct {
	Stream StreamID
	Addrs  []storage.Address
}

// Token is the answer to Next: Start is the first of the n addresses handed
// out; Backpointers holds, for each stream named in the request and in the
// request's order, its most recent addresses before Start, newest first.
type Token struct {
	Start        storage.Address
	Backpointers []StreamTail
}
