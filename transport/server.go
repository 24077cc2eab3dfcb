package transport

import (
	"context"
	"fmt"
	"sync"

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
	// Persist, if not nil, makes the sequencer's and the layout server's
	// state durable: after a request changed state that its answer depends
	// on (the sequencer's reservation mark and the epoch of its last
	// bootstrap, the acceptor's promise, accepted value or committed
	// projection), the Server hands that state to Persist and sends the
	// answer only once Persist returned. If Persist
	// fails, the answer is ErrNotDurable, and the host must stop serving
	// until it restarted from what it had persisted. A nil Persist keeps
	// everything in memory, as the in-process and simulated hosts do.
	// (Storage units make their own state durable.)
	//
	// A token's answer depends only on the saved reservation mark being at
	// or above its last address (and on no bootstrap since the last save):
	// with Ahead set, a token below the saved mark is answered at once,
	// and a mark that moved is saved in the background (see
	// sequencer.Sequencer.Mark: it moves while half a reserve still lies
	// ahead), so that the save keeps no token waiting unless the tail
	// catches up with it.
	Persist Persister
	// Ahead, if not nil, runs the sequencer's background saves (AfterFunc
	// with no delay): SystemTimers in a real host, the simulator's
	// Scheduler in a simulated one. Nil saves every moved mark before the
	// answer of the request that moved it.
	Ahead Timers

	// NB: with a Persister, each role's calls run one at a time, from
	// the state change to the save, so that saves happen in state order;
	// a background save holds seqSaving instead of seqMu while its I/O
	// runs, and a call that needs its state durable waits for it.
	seqMu, layoutMu sync.Mutex
	seqCond         sync.Cond // on seqMu: signalled when a background save ends
	savedSeq        sequencer.State
	seqSaved        bool
	seqSaving       bool // a background save's I/O runs
	seqQueued       bool // a background save is queued and has not begun

	board Board // a layout server's reports (OpReport)
}

// Persister saves the state a role's answers depend on; see Server.Persist.
// A durable host writes it to stable storage (write, fsync, rename) before
// returning.
type Persister interface {
	// SaveSequencer saves the sequencer's state (sequencer.State: its
	// reservation mark and the epoch of its last bootstrap); a restarted
	// sequencer gets them as Config.Floor and Config.Booted, with
	// Config.Recovered.
	SaveSequencer(st sequencer.State) error
	// SaveLayout saves the layout server's acceptor state; a restarted one
	// is projection.RestoreAcceptor(st).
	SaveLayout(st projection.AcceptorState) error
}

// Handle serves req with the role its Op names and returns the answer. It
// never returns nil and never panics on a request that DecodeRequest
// returned: a nil request or an unknown Op gets ErrMalformed, an Op for a
// role the node does not play gets ErrWrongRole (so does a join for a unit
// that is not a Joiner, and a repair for one that is not a
// storage.Repairer), and a propose or commit
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
	case OpWriteBatch:
		if s.Unit == nil {
			return wrongRole(req.Op, "storage unit")
		}
		return s.writeBatch(req)
	case OpReadBatch:
		if s.Unit == nil {
			return wrongRole(req.Op, "storage unit")
		}
		return s.readBatch(req)
	case OpReadWait:
		// NB: a Server answers at once; parking reads is its host's
		// part (ReadWaits), so a client that meets this error polls.
		return wrongRole(req.Op, "host that parks reads (transport.ReadWaits)")
	case OpJoin:
		j, ok := s.Unit.(Joiner)
		if !ok {
			return wrongRole(req.Op, "storage unit that can rejoin")
		}
		return &Response{Err: j.Join(context.Background(), req.Epoch)}
	case OpRepair:
		r, ok := s.Unit.(storage.Repairer)
		if !ok {
			return wrongRole(req.Op, "storage unit that can repair its records")
		}
		return &Response{Err: r.Repair(context.Background(), req.Epoch, req.Addr, req.Data, req.N == repairJunk)}
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
	case OpReport:
		if s.Layout == nil {
			return wrongRole(req.Op, "layout server")
		}
		// NB: reports are advisory and kept in memory only: nothing a
		// reply promises depends on them surviving a restart.
		data, err := s.board.Post(req.Data)
		return &Response{Data: data, Err: err}
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
	if s.Persist == nil {
		return s.sequencerStep(req)
	}
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	resp := s.sequencerStep(req)
	// NB: persist, then reply: a token above a mark that is not durable
	// could be handed out again after a restart, and a bootstrap whose
	// epoch is not durable would leave a restart vouching for too little.
	st := s.Sequencer.State()
	if s.seqSaved && st == s.savedSeq {
		return resp
	}
	if s.Ahead != nil && s.coveredBySaved(req, resp, st) {
		if !s.seqQueued && !s.seqSaving {
			s.seqQueued = true
			s.Ahead.AfterFunc(0, s.saveAhead)
		}
		return resp
	}
	// NB: a background save that has begun may already cover st; one
	// queued and not begun is not waited for (in the simulator it cannot
	// run until this call returns): this call saves, and it finds nothing
	// left to save.
	for s.seqSaving {
		s.seqWait()
	}
	if st = s.Sequencer.State(); !s.seqSaved || st != s.savedSeq {
		if err := s.Persist.SaveSequencer(st); err != nil {
			return &Response{Err: fmt.Errorf("%w: sequencer state %+v: %v", ErrNotDurable, st, err)}
		}
		s.savedSeq, s.seqSaved = st, true
	}
	return resp
}

// coveredBySaved reports whether the answer resp to req, given with the
// sequencer's state now st, depends on nothing the last save did not make
// durable: a token (or a refusal of one) below the saved mark, with no
// bootstrap since. seqMu is held.
func (s *Server) coveredBySaved(req *Request, resp *Response, st sequencer.State) bool {
	if !s.seqSaved || req.Op != OpToken || st.Booted != s.savedSeq.Booted {
		return false
	}
	if resp.Err != nil {
		return true // NB: hands out nothing
	}
	return resp.Addr <= s.savedSeq.Mark && uint64(req.N) <= uint64(s.savedSeq.Mark-resp.Addr)
}

// saveAhead is the background save (Ahead): it saves the sequencer's
// state as it is when the save begins, unless a call saved it first.
func (s *Server) saveAhead() {
	s.seqMu.Lock()
	s.seqQueued = false
	st := s.Sequencer.State()
	if s.seqSaved && st == s.savedSeq {
		s.seqCond.Broadcast()
		s.seqMu.Unlock()
		return
	}
	s.seqSaving = true
	s.seqMu.Unlock()
	err := s.Persist.SaveSequencer(st)
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	s.seqSaving = false
	// NB: on an error the state stays unsaved: the next call that needs
	// it saves it, and answers ErrNotDurable if that fails too.
	if err == nil {
		s.savedSeq, s.seqSaved = st, true
	}
	s.seqCond.Broadcast()
}

// WaitSaves returns once no background save of the sequencer's state
// (Ahead) is queued or under way. A host calls it after it stopped serving
// and before it closes its Persister, so that no save meets a closed one.
func (s *Server) WaitSaves() {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	for s.seqQueued || s.seqSaving {
		s.seqWait()
	}
}

// seqWait waits for a background save to end; seqMu is held.
func (s *Server) seqWait() {
	if s.seqCond.L == nil {
		s.seqCond.L = &s.seqMu
	}
	s.seqCond.Wait()
}

// sequencerStep runs req on the sequencer.
func (s *Server) sequencerStep(req *Request) *Response {
	resp := new(Response)
	switch req.Op {
	case OpToken:
		// NB: where int has 32 bits a large N turns negative, which the
		// sequencer rejects like any batch above MaxBatch.
		var tok sequencer.Token
		tok, resp.Err = s.Sequencer.Next(req.Epoch, int(req.N), req.Streams)
		resp.Addr, resp.Tails = tok.Start, tok.Backpointers
	case OpBootstrap:
		// NB: Rank names the incarnation the reconfiguration sealed; a
		// sequencer restarted since must not take its old state.
		if inc := s.Sequencer.Incarnation(); req.Rank != 0 && inc != 0 && req.Rank != inc {
			resp.Err = fmt.Errorf("%w: bootstrap for incarnation %d, this is %d", sequencer.ErrRestarted, req.Rank, inc)
			break
		}
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
		resp.Rank |= res.Incarnation << sealFlagBits
	}
	return resp
}

func (s *Server) layout(req *Request) *Response {
	if s.Persist == nil || req.Op == OpGetLayout {
		return s.layoutStep(req)
	}
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	before := s.Layout.State()
	resp := s.layoutStep(req)
	// NB: persist, then reply: Paxos is safe only if a promise or an
	// accepted value outlives a restart of the acceptor that gave it.
	if after := s.Layout.State(); !sameAcceptorState(before, after) {
		if err := s.Persist.SaveLayout(after); err != nil {
			return &Response{Err: fmt.Errorf("%w: layout state: %v", ErrNotDurable, err)}
		}
	}
	return resp
}

// sameAcceptorState reports whether a and b are one state.
func sameAcceptorState(a, b projection.AcceptorState) bool {
	return a.Promised == b.Promised && a.AcceptedRank == b.AcceptedRank &&
		a.Latest.Equal(b.Latest) && (a.Accepted == nil) == (b.Accepted == nil) &&
		(a.Accepted == nil || a.Accepted.Equal(b.Accepted))
}

// layoutStep runs req on the acceptor.
func (s *Server) layoutStep(req *Request) *Response {
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
