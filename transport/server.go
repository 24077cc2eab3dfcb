package transport

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Server is a Handler that serves the roles a node plays: a storage unit, a
// sequencer, a layout server, or any mix of them. A nil field means the node
// does not play that role, and requests for it get ErrWrongRole.
//
// A Server is as safe for concurrent use as its roles are; the storage,
// sequencer and projection implementations all are.
type Server struct {
	Unit      storage.Unit
	Sequencer *sequencer.Sequencer
	Layout    *projection.Acceptor
}

// Handle serves req with the role its Op names and returns the answer. It
// never returns nil and never panics on a request that DecodeRequest
// returned: a nil request or an unknown Op gets ErrMalformed, an Op for a
// role the node does not play gets ErrWrongRole (so does a join for a unit
// that is not a Joiner), and a propose or commit
// without a projection gets projection.ErrInvalid. Every other error comes
// from the role.
func (s *Server) Handle(req *Request) *Response {
	if req == nil {
		return &Response{Err: fmt.Errorf("%w: nil request", ErrMalformed)}
	}
	switch req.Op {
	case OpWrite, OpRead, OpFill, OpTrim, OpPrefixTrim, OpSeal:
		if s.Unit == nil {
			return wrongRole(req.Op, "storage unit")
		}
		return s.unit(req)
	case OpJoin:
		j, ok := s.Unit.(Joiner)
		if !ok {
			return wrongRole(req.Op, "storage unit that can rejoin")
		}
		return &Response{Err: j.Join(context.Background(), req.Epoch)}
	case OpToken, OpBootstrap, OpSeqSeal:
		if s.Sequencer == nil {
			return wrongRole(req.Op, "sequencer")
		}
		return s.sequencer(req)
	case OpGetLayout, OpPrepare, OpPropose, OpCommit:
		if s.Layout == nil {
			return wrongRole(req.Op, "layout server")
		}
		return s.layout(req)
	}
	return &Response{Err: fmt.Errorf("%w: unknown op %d", ErrMalformed, uint8(req.Op))}
}

// Joiner is a storage unit that can come back blank (fault catalog P4) and
// join again; storage.Memory is one. A Server serves OpJoin only for a Unit
// that implements it.
type Joiner interface {
	Join(ctx context.Context, epoch storage.Epoch) error
}

func wrongRole(op Op, role string) *Response {
	return &Response{Err: fmt.Errorf("%w: %s needs a %s", ErrWrongRole, op, role)}
}

// unit serves the storage unit's operations. A unit answers at once, so it
// gets a background context.
func (s *Server) unit(req *Request) *Response {
	ctx := context.Background()
	resp := new(Response)
	switch req.Op {
	case OpWrite:
		resp.Err = s.Unit.Write(ctx, req.Epoch, req.Addr, req.Data)
	case OpRead:
		resp.Data, resp.Err = s.Unit.Read(ctx, req.Epoch, req.Addr)
	case OpFill:
		resp.Err = s.Unit.Fill(ctx, req.Epoch, req.Addr)
	case OpTrim:
		resp.Err = s.Unit.Trim(ctx, req.Epoch, req.Addr)
	case OpPrefixTrim:
		resp.Err = s.Unit.PrefixTrim(ctx, req.Epoch, req.Addr)
	case OpSeal:
		resp.Addr, resp.Err = s.Unit.Seal(ctx, req.Epoch)
	}
	return resp
}

func (s *Server) sequencer(req *Request) *Response {
	resp := new(Response)
	switch req.Op {
	case OpToken:
		// NB: where int has 32 bits a large N turns negative, which the
		// sequencer rejects like any batch above MaxBatch.
		var tok sequencer.Token
		tok, resp.Err = s.Sequencer.Next(req.Epoch, int(req.N), req.Streams)
		resp.Addr, resp.Tails = tok.Start, tok.Backpointers
	case OpBootstrap:
		resp.Err = s.Sequencer.Bootstrap(req.Epoch, req.Addr, req.Tails)
	case OpSeqSeal:
		var res sequencer.SealResult
		res, resp.Err = s.Sequencer.Seal(req.Epoch)
		resp.Addr, resp.Tails = res.Tail, res.Tails
		if res.Lost {
			resp.Rank |= sealLost // see OpSeqSeal
		}
		if res.NoMark {
			resp.Rank |= sealNoMark
		}
	}
	return resp
}

func (s *Server) layout(req *Request) *Response {
	resp := new(Response)
	switch req.Op {
	case OpGetLayout:
		resp.Projection = s.Layout.Latest()
	case OpPrepare:
		resp.Rank, resp.Projection, resp.Err = s.Layout.Prepare(req.Epoch, req.Rank)
	case OpPropose:
		if req.Projection == nil {
			resp.Err = noProjection(req.Op)
			break
		}
		resp.Err = s.Layout.Propose(req.Epoch, req.Rank, req.Projection)
	case OpCommit:
		if req.Projection == nil {
			resp.Err = noProjection(req.Op)
			break
		}
		resp.Err = s.Layout.Commit(req.Projection)
	}
	return resp
}

func noProjection(op Op) error {
	return fmt.Errorf("transport: %s without a projection: %w", op, projection.ErrInvalid)
}
