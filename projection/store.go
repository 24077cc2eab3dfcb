package projection

import (
	"errors"
	"fmt"
	"sync"

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
)

// MaxOpenEpochs bounds the epochs above the latest committed one for which an
// Acceptor keeps promises at once. Requests that would open more are
// rejected.
const MaxOpenEpochs = 64

// Acceptor is a layout server's state: the latest committed projection, and
// for each later epoch a write-once slot agreed Paxos-style, so that two
// clients racing to reconfigure never install two different projections for
// one epoch.
//
// Each epoch above the latest committed one is a separate single-decree Paxos
// instance. A proposer picks a rank unique to itself and not zero (for
// example attempt<<8 | proposer index), runs Prepare on a majority of the
// layout servers, proposes the accepted value of the highest rank they
// returned (or its own if none), and once a majority has accepted it, sends
// Commit to every layout server.
//
// Paxos is safe only if promises and accepted values survive a restart; a
// durable layout server must persist them before it replies.
//
// An Acceptor is a plain synchronous state machine and safe for concurrent
// use.
type Acceptor struct {
	mu     sync.Mutex
	latest *Projection             // the highest committed projection
	slots  map[storage.Epoch]*slot // epochs above latest.Epoch only
}

// slot is the Paxos acceptor state for one epoch.
type slot struct {
	promised     uint64      // highest rank promised; 0 for none
	acceptedRank uint64      // rank of accepted; 0 for none
	accepted     *Projection // the accepted value, or nil
}

// NewAcceptor returns an acceptor whose latest committed projection is
// initial. initial must be valid; the acceptor keeps a copy. It panics if
// initial is nil.
func NewAcceptor(initial *Projection) *Acceptor {
	if initial == nil {
		panic("projection: NewAcceptor with a nil projection")
	}
	return &Acceptor{latest: initial.Clone(), slots: make(map[storage.Epoch]*slot)}
}

// Latest returns a copy of the highest committed projection.
func (a *Acceptor) Latest() *Projection {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest.Clone()
}

// open creates the slot of epoch if the bound allows. a.mu is held.
func (a *Acceptor) open(epoch storage.Epoch) (*slot, error) {
	if len(a.slots) >= MaxOpenEpochs {
		return nil, fmt.Errorf("%w: %d epochs open above committed epoch %d", ErrRejected, len(a.slots), a.latest.Epoch)
	}
	s := &slot{}
	a.slots[epoch] = s
	return s, nil
}

// Prepare is Paxos phase 1 for epoch: the acceptor promises to accept no
// proposal for epoch with a rank below rank, and returns the projection it
// has accepted for epoch with that proposal's rank (nil and 0 if none).
//
// Prepare returns ErrStaleEpoch if epoch is not above the latest committed
// epoch (the caller fetches Latest), and ErrRejected if rank is not above the
// rank already promised for epoch (rank 0 is never above it) or if
// MaxOpenEpochs epochs are open already. With ErrRejected for a rank, the
// first result is the rank promised, for the proposer to outbid.
func (a *Acceptor) Prepare(epoch storage.Epoch, rank uint64) (acceptedRank uint64, accepted *Projection, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if epoch <= a.latest.Epoch {
		return 0, nil, fmt.Errorf("%w: epoch %d, committed %d", ErrStaleEpoch, epoch, a.latest.Epoch)
	}
	s := a.slots[epoch] // nil if the epoch has no state yet
	promised := uint64(0)
	if s != nil {
		promised = s.promised
	}
	if rank <= promised {
		// NB: the promised rank goes back with the rejection, so the
		// proposer can outbid it rather than guess.
		return promised, nil, fmt.Errorf("%w: rank %d, promised %d for epoch %d", ErrRejected, rank, promised, epoch)
	}
	if s == nil {
		var err error
		if s, err = a.open(epoch); err != nil {
			return 0, nil, err
		}
	}
	s.promised = rank
	return s.acceptedRank, s.accepted.Clone(), nil
}

// Propose is Paxos phase 2 for epoch: the acceptor accepts p as its value for
// epoch at rank, unless it has promised a higher rank. The acceptor keeps a
// copy of p.
//
// Propose returns ErrStaleEpoch if epoch is not above the latest committed
// epoch; ErrRejected if rank is zero or below the rank promised for epoch, or
// if MaxOpenEpochs epochs are open already; ErrInvalid if p is nil, p.Epoch is
// not epoch, or p may not follow the latest committed projection (see
// ValidateNext); and ErrConflict if a different projection was accepted at
// the same rank (two proposers sharing a rank).
func (a *Acceptor) Propose(epoch storage.Epoch, rank uint64, p *Projection) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if epoch <= a.latest.Epoch {
		return fmt.Errorf("%w: epoch %d, committed %d", ErrStaleEpoch, epoch, a.latest.Epoch)
	}
	s := a.slots[epoch] // nil if the epoch has no state yet
	promised := uint64(0)
	if s != nil {
		promised = s.promised
	}
	if rank == 0 || rank < promised {
		return fmt.Errorf("%w: rank %d, promised %d for epoch %d", ErrRejected, rank, promised, epoch)
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
	if s != nil && s.accepted != nil && s.acceptedRank == rank && !s.accepted.Equal(p) {
		return fmt.Errorf("%w: another projection already accepted for epoch %d at rank %d", ErrConflict, epoch, rank)
	}
	if s == nil {
		var err error
		if s, err = a.open(epoch); err != nil {
			return err
		}
	}
	s.promised = rank
	s.acceptedRank = rank
	s.accepted = p.Clone()
	return nil
}

// Commit tells the acceptor that p was chosen for its epoch (it was accepted
// by a majority at one rank). If p's epoch is above the latest committed one,
// p becomes the latest and the state of every epoch up to it is discarded;
// an older p changes nothing. The acceptor keeps a copy of p.
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
	for e := range a.slots {
		if e <= p.Epoch {
			delete(a.slots, e)
		}
	}
	return nil
}
