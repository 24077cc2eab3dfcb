package inproc

import (
	"context"
	"fmt"
	"sync"

	"github.com/corfulog/corfu/transport"
)

// Network is an in-process network of named nodes. The zero Network has no
// nodes and is ready to use. A Network is safe for concurrent use.
type Network struct {
	mu    sync.RWMutex
	nodes map[transport.NodeID]*node
}

// node is one registered handler; mu serves its calls one at a time.
type node struct {
	mu sync.Mutex
	h  transport.Handler
}

var _ transport.Caller = (*Network)(nil)

// New returns an empty network.
func New() *Network { return &Network{} }

// Register makes h the handler of node id, replacing any handler id had.
// Calls already in progress finish with the old handler.
func (n *Network) Register(id transport.NodeID, h transport.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes == nil {
		n.nodes = make(map[transport.NodeID]*node)
	}
	n.nodes[id] = &node{h: h}
}

// Remove takes node id off the network: later calls to it fail with
// ErrUnreachable. Calls already in progress finish. Removing an unknown node
// does nothing.
func (n *Network) Remove(id transport.NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.nodes, id)
}

// Call delivers req to node to and returns its response, as transport.Caller
// describes. It returns ctx's error if ctx is done before delivery (and then
// delivers nothing), an error wrapping transport.ErrUnreachable if no node is
// registered as to, and an error wrapping transport.ErrMalformed if req is
// nil or does not encode to a valid message (for example, more streams than
// sequencer.MaxStreams). Otherwise it returns the handler's response, decoded
// from its wire form, and the response's Err. An answer that an
// AsyncHandler sends late is waited for until ctx is done.
func (n *Network) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", transport.ErrMalformed)
	}
	n.mu.RLock()
	nd := n.nodes[to]
	n.mu.RUnlock()
	if nd == nil {
		return nil, fmt.Errorf("%w: %s", transport.ErrNotSent, to)
	}
	// NB: the decoded messages share no memory with their encoding, so
	// one buffer serves both, and the next call.
	buf := getBuf()
	defer putBuf(buf)
	*buf = transport.AppendRequest((*buf)[:0], req)
	in, err := transport.DecodeRequest(*buf)
	if err != nil {
		return nil, fmt.Errorf("inproc: %s to %s: %w", req.Op, to, err)
	}
	out, err := nd.handle(ctx, in)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%w: %s answered %s with no response", transport.ErrMalformed, to, req.Op)
	}
	*buf = transport.AppendResponse((*buf)[:0], out)
	resp, err := transport.DecodeResponse(*buf)
	if err != nil {
		return nil, fmt.Errorf("inproc: response of %s to %s: %w", to, req.Op, err)
	}
	return resp, resp.Err
}

// bufs holds encoding buffers for Call.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBytes bounds the buffers bufs keeps: a call that encoded a large
// batch does not pin its buffer.
const maxPooledBytes = 64 << 10

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBytes {
		bufs.Put(b)
	}
}

// handle serves one request, after any other call to the node has finished
// (an AsyncHandler's answer may come later: then it waits for it, or for
// ctx).
func (nd *node) handle(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	// NB: only a read that waits needs an answer sent late; every other
	// request is served by Handle, at no cost of a channel.
	ah, ok := nd.h.(transport.AsyncHandler)
	if !ok || req.Op != transport.OpReadWait {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		return nd.h.Handle(req), nil
	}
	answer := make(chan *transport.Response, 1)
	nd.mu.Lock()
	ah.Serve(req, func(resp *transport.Response) { answer <- resp })
	nd.mu.Unlock()
	select {
	case resp := <-answer: // NB: an answer given at once wins over ctx
		return resp, nil
	default:
	}
	select {
	case resp := <-answer:
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
