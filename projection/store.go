package projection

import (
	"errors"
	"fmt"
	"sync"

	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/storage"
)

var (
	// ErrRejected reports a Prepare or Propose that lost to a higher rank:
	// the acceptor has promised that rank (or, for Prepare, the same one) for
	// the epoch. The proposer retries with a higher rank.
	ErrRejected = errors.New("projection: proposal rank superseded")
	// ErrConflict reports a second, different projection for an epoch that
	// already has one: committed, or accepted at the same rank.
	ErrConflict = errors.New("projection: conflicting projection for epoch")
	// ErrEpochGap reports a Prepare or Propose for an epoch above the one
	// after the acceptor's latest committed epoch. Epochs are contiguous:
	// the proposer must learn the chosen projection of every epoch in
	// between (from another layout server, or by running Paxos for it)
	// before it may propose this one.
	ErrEpochGap = errors.New("projection: epoch skips one not learned yet")
)

// Acceptor is a layout server's state: the latest committed projection, and
// for the next epoch a write-once slot agreed Paxos-style, so that two
// clients racing to reconfigure never install two different projections for
// one epoch.
//
// Each epoch is a separate single-decree Paxos instance. A proposer picks a
// rank unique to itself and not zero (for example attempt<<8 | proposer
// index), runs Prepare on a majority of the layout servers, proposes the
// accepted value of the highest rank they returned (or its own if none), and
// once a majority has accepted it, sends Commit to every layout server.
//
// Epochs are contiguous: an acceptor promises and accepts only for the epoch
// right after its latest committed one (ErrEpochGap above it). So a value is
// chosen for epoch e+2 only by a majority that learned e+1's chosen value,
// and every chosen projection is a successor (ValidateNext) of the one
// chosen before it: the history never forks, and a proposer that missed
// epoch e+1 cannot get a successor of e chosen for e+2. The rule sits at
// the acceptor rather than in the proposer because the acceptor is the one
// place a stale proposer cannot skip.
//
// Paxos is safe only if promises and accepted values survive a restart. The
// acceptor's answers depend on State; a durable host saves State after each
// call that changed it and before it sends the answer, and restarts the
// acceptor with RestoreAcceptor.
//
// An Acceptor is a plain synchronous state machine and safe for concurrent
// use.
type Acceptor struct {
	mu     sync.Mutex
	latest *Projection // the highest committed projection
	next   slot        // the Paxos state of epoch latest.Epoch+1
	// beyond holds epochs above latest.Epoch+1, which only the
	// AcceptorSkipsEpochs mutant opens.
	beyond map[storage.Epoch]*slot
}

// slot is the Paxos acceptor state for one epoch.
type slot struct {
	promised     uint64      // highest rank promised; 0 for none
	acceptedRank uint64      // rank of accepted; 0 for none
	accepted     *Projection // the accepted value, or nil
}

// AcceptorState is everything an acceptor's answers depend on: its latest
// committed projection, and its promise and accepted value for the epoch
// after it. It is what a durable layout server persists.
type AcceptorState struct {
	Latest       *Projection
	Promised     uint64      // rank promised for epoch Latest.Epoch+1; 0 for none
	AcceptedRank uint64      // rank of Accepted; 0 for none
	Accepted     *Projection // accepted for epoch Latest.Epoch+1, or nil
}

// NewAcceptor returns an acceptor whose latest committed projection is
// initial. initial must be valid; the acceptor keeps a copy. It panics if
// initial is nil.
func NewAcceptor(initial *Projection) *Acceptor {
	if initial == nil {
		panic("projection: NewAcceptor with a nil projection")
	}
	return &Acceptor{latest: initial.Clone()}
}

// RestoreAcceptor returns an acceptor in state st, as State returned it
// before a restart. It returns ErrInvalid if st has no valid latest
// projection, or an accepted value that is no successor of it or carries a
// rank above none promised.
func RestoreAcceptor(st AcceptorState) (*Acceptor, error) {
	if st.Latest == nil {
		return nil, fmt.Errorf("%w: acceptor state without a committed projection", ErrInvalid)
	}
	if err := st.Latest.Validate(); err != nil {
		return nil, err
	}
	if st.Accepted != nil {
		if st.Accepted.Epoch != st.Latest.Epoch+1 || st.AcceptedRank == 0 || st.AcceptedRank > st.Promised {
			return nil, fmt.Errorf("%w: accepted value of epoch %d at rank %d (promised %d) after epoch %d",
				ErrInvalid, st.Accepted.Epoch, st.AcceptedRank, st.Promised, st.Latest.Epoch)
		}
		if err := ValidateNext(st.Latest, st.Accepted); err != nil {
			return nil, err
		}
	}
	return &Acceptor{latest: st.Latest.Clone(), next: slot{
		promised: st.Promised, acceptedRank: st.AcceptedRank, accepted: st.Accepted.Clone(),
	}}, nil
}

// State returns a copy of the acceptor's state, for its host to persist.
func (a *Acceptor) State() AcceptorState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AcceptorState{Latest: a.latest.Clone(), Promised: a.next.promised,
		AcceptedRank: a.next.acceptedRank, Accepted: a.next.accepted.Clone()}
}

// Latest returns a copy of the highest committed projection.
func (a *Acceptor) Latest() *Projection {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest.Clone()
}

// checkNext checks that epoch is the one after the latest committed one.
// a.mu is held.
func (a *Acceptor) checkNext(epoch storage.Epoch) error {
	switch {
	case epoch <= a.latest.Epoch:
		return fmt.Errorf("%w: epoch %d, committed %d", ErrStaleEpoch, epoch, a.latest.Epoch)
	case epoch > a.latest.Epoch+1 && !mutant.Lookup(a).AcceptorSkipsEpochs:
		return fmt.Errorf("%w: epoch %d, committed %d", ErrEpochGap, epoch, a.latest.Epoch)
	}
	return nil
}

// Prepare is Paxos phase 1 for epoch: the acceptor promises to accept no
// proposal for epoch with a rank below rank, and returns the projection it
// has accepted for epoch with that proposal's rank (nil and 0 if none).
//
// Prepare returns ErrStaleEpoch if epoch is not above the latest committed
// epoch (the caller fetches Latest); ErrEpochGap if it is above the one after
// it; and ErrRejected if rank is not above the rank already promised for
// epoch (rank 0 is never above it). With ErrRejected, the first result is the
// rank promised, for the proposer to outbid.
func (a *Acceptor) Prepare(epoch storage.Epoch, rank uint64) (acceptedRank uint64, accepted *Projection, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.checkNext(epoch); err != nil {
		return 0, nil, err
	}
	s := a.slot(epoch)
	if rank <= s.promised {
		// NB: the promised rank goes back with the rejection, so the
		// proposer can outbid it rather than guess.
		return s.promised, nil, fmt.Errorf("%w: rank %d, promised %d for epoch %d", ErrRejected, rank, s.promised, epoch)
	}
	s.promised = rank
	return s.acceptedRank, s.accepted.Clone(), nil
}

// slot returns the Paxos state of epoch, which checkNext passed. a.mu is
// held.
func (a *Acceptor) slot(epoch storage.Epoch) *slot {
	if epoch == a.latest.Epoch+1 {
		return &a.next
	}
	// Mutant only: a slot of its own for an epoch past the next one.
	if a.beyond == nil {
		a.beyond = map[storage.Epoch]*slot{}
	}
	if a.beyond[epoch] == nil {
		a.beyond[epoch] = &slot{}
	}
	return a.beyond[epoch]
}

// Propose is Paxos phase 2 for epoch: the acceptor accepts p as its value for
// epoch at rank, unless it has promised a higher rank. The acceptor keeps a
// copy of p.
//
// Propose returns ErrStaleEpoch if epoch is not above the latest committed
// epoch; ErrEpochGap if it is above the one after it; ErrRejected if rank is
// zero or below the rank promised for epoch; ErrInvalid if p is nil, p.Epoch
// is not epoch, or p may not follow the latest committed projection (see
// ValidateNext); and ErrConflict if a different projection was accepted at
// the same rank (two proposers sharing a rank).
func (a *Acceptor) Propose(epoch storage.Epoch, rank uint64, p *Projection) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.checkNext(epoch); err != nil {
		return err
	}
	s := a.slot(epoch)
	if rank == 0 || rank < s.promised {
		return fmt.Errorf("%w: rank %d, promised %d for epoch %d", ErrRejected, rank, s.promised, epoch)
	}
	if p == nil {
		return fmt.Errorf("%w: nil projection proposed for epoch %d", ErrInvalid, epoch)
	}
	if p.Epoch != epoch {
		return fmt.Errorf("%w: projection of epoch %d proposed for epoch %d", ErrInvalid, p.Epoch, epoch)
	}
	if err := ValidateNext(a.latest, p); err != nil {
		return err
	}
	if s.accepted != nil && s.acceptedRank == rank && !s.accepted.Equal(p) {
		return fmt.Errorf("%w: another projection already accepted for epoch %d at rank %d", ErrConflict, epoch, rank)
	}
	s.promised = rank
	s.acceptedRank = rank
	s.accepted = p.Clone()
	return nil
}

// Commit tells the acceptor that p was chosen for its epoch (it was accepted
// by a majority at one rank). If p's epoch is above the latest committed one,
// p becomes the latest and the Paxos state of the epoch after the old latest
// is discarded; an older p changes nothing. The acceptor keeps a copy of p.
//
// A p more than one epoch ahead is taken as it is: it was chosen by a
// majority that had learned every epoch in between, so it extends them.
//
// Commit returns ErrInvalid if p is nil or invalid, and ErrConflict if a
// different projection is already committed for p's epoch.
func (a *Acceptor) Commit(p *Projection) error {
	if err := p.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case p.Epoch < a.latest.Epoch:
		return nil
	case p.Epoch == a.latest.Epoch:
		if !a.latest.Equal(p) {
			return fmt.Errorf("%w: epoch %d already committed with another projection", ErrConflict, p.Epoch)
		}
		return nil
	}
	a.latest = p.Clone()
	a.next = slot{}
	if s := a.beyond[p.Epoch+1]; s != nil {
		a.next = *s
	}
	for e := range a.beyond {
		if e <= p.Epoch+1 {
			delete(a.beyond, e)
		}
	}
	return nil
}
