package projection_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// base is the committed projection the acceptor tests start from (epoch 1).
func base() *projection.Projection {
	return proj(1, seg(0, 10, 0, chain("a")), seg(10, 0, 0, chain("b")))
}

// successor returns a valid projection of epoch that may follow base; tag
// makes different successors different.
func successor(epoch storage.Epoch, tag string) *projection.Projection {
	return proj(epoch, seg(0, 10, 0, chain("a")), seg(10, 20, 0, chain("b")), seg(20, 0, 0, chain(projection.NodeID("n-"+tag))))
}

func TestNewAcceptorCopies(t *testing.T) {
	p := base()
	a := projection.NewAcceptor(p)
	p.Sequencer = "changed"
	got := a.Latest()
	assert.Equal(t, base(), got)
	got.Layout[0] = "changed"
	assert.Equal(t, base(), a.Latest())
	assert.Panics(t, func() { projection.NewAcceptor(nil) })
}

func TestPrepare(t *testing.T) {
	type step struct {
		prepare bool // Prepare(epoch, rank); otherwise Propose(epoch, rank, successor(epoch, tag))
		epoch   storage.Epoch
		rank    uint64
		tag     string
	}
	tests := []struct {
		name         string
		setup        []step
		epoch        storage.Epoch
		rank         uint64
		want         error
		wantRank     uint64
		wantAccepted *projection.Projection
	}{
		{name: "first prepare", epoch: 2, rank: 1},
		{name: "far epoch: a gap", epoch: 40, rank: 1, want: projection.ErrEpochGap},
		{name: "the epoch after next: a gap", epoch: 3, rank: 1, want: projection.ErrEpochGap},
		{name: "committed epoch", epoch: 1, rank: 1, want: projection.ErrStaleEpoch},
		{name: "older epoch", epoch: 0, rank: 1, want: projection.ErrStaleEpoch},
		{name: "rank zero", epoch: 2, rank: 0, want: projection.ErrRejected},
		{name: "same rank again", setup: []step{{prepare: true, epoch: 2, rank: 3}}, epoch: 2, rank: 3, want: projection.ErrRejected},
		{name: "lower rank", setup: []step{{prepare: true, epoch: 2, rank: 3}}, epoch: 2, rank: 2, want: projection.ErrRejected},
		{name: "higher rank", setup: []step{{prepare: true, epoch: 2, rank: 3}}, epoch: 2, rank: 4},
		{
			name:  "returns the accepted value",
			setup: []step{{prepare: true, epoch: 2, rank: 3}, {epoch: 2, rank: 3, tag: "x"}},
			epoch: 2, rank: 5, wantRank: 3, wantAccepted: successor(2, "x"),
		},
		{
			name:  "returns the latest accepted value",
			setup: []step{{epoch: 2, rank: 3, tag: "x"}, {epoch: 2, rank: 7, tag: "y"}},
			epoch: 2, rank: 8, wantRank: 7, wantAccepted: successor(2, "y"),
		},
		{
			name:  "a propose raises the promise",
			setup: []step{{epoch: 2, rank: 7, tag: "x"}},
			epoch: 2, rank: 7, want: projection.ErrRejected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := projection.NewAcceptor(base())
			for _, s := range tt.setup {
				if s.prepare {
					_, _, err := a.Prepare(s.epoch, s.rank)
					require.NoError(t, err)
				} else {
					require.NoError(t, a.Propose(s.epoch, s.rank, successor(s.epoch, s.tag)))
				}
			}
			rank, accepted, err := a.Prepare(tt.epoch, tt.rank)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				if errors.Is(err, projection.ErrRejected) && tt.rank > 0 {
					// The promised rank comes back, at least the one refused.
					assert.GreaterOrEqual(t, rank, tt.rank)
				} else {
					assert.Zero(t, rank)
				}
				assert.Nil(t, accepted)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantRank, rank)
			assert.Equal(t, tt.wantAccepted, accepted)
		})
	}
}

func TestPropose(t *testing.T) {
	breaksPrefix := proj(2, seg(0, 10, 5, chain("a")), seg(10, 0, 0, chain("c")))
	tests := []struct {
		name    string
		promise uint64 // Prepare(2, promise) first unless zero
		accept  uint64 // Propose(2, accept, successor(2, "x")) first unless zero
		epoch   storage.Epoch
		rank    uint64
		p       *projection.Projection
		want    error
	}{
		{name: "without prepare", epoch: 2, rank: 1, p: successor(2, "y")},
		{name: "at the promised rank", promise: 4, epoch: 2, rank: 4, p: successor(2, "y")},
		{name: "above the promised rank", promise: 4, epoch: 2, rank: 6, p: successor(2, "y")},
		{name: "below the promised rank", promise: 4, epoch: 2, rank: 3, p: successor(2, "y"), want: projection.ErrRejected},
		{name: "rank zero", epoch: 2, rank: 0, p: successor(2, "y"), want: projection.ErrRejected},
		{name: "committed epoch", epoch: 1, rank: 1, p: successor(1, "y"), want: projection.ErrStaleEpoch},
		{name: "nil projection", epoch: 2, rank: 1, p: nil, want: projection.ErrInvalid},
		{name: "epoch mismatch", epoch: 2, rank: 1, p: successor(3, "y"), want: projection.ErrInvalid},
		{name: "invalid projection", epoch: 2, rank: 1, p: proj(2), want: projection.ErrInvalid},
		{name: "breaks the committed prefix", epoch: 2, rank: 1, p: breaksPrefix, want: projection.ErrInvalid},
		{name: "same value at the same rank again", accept: 4, epoch: 2, rank: 4, p: successor(2, "x")},
		{name: "other value at the same rank", accept: 4, epoch: 2, rank: 4, p: successor(2, "y"), want: projection.ErrConflict},
		{name: "other value at a higher rank", accept: 4, epoch: 2, rank: 5, p: successor(2, "y")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := projection.NewAcceptor(base())
			if tt.promise != 0 {
				_, _, err := a.Prepare(2, tt.promise)
				require.NoError(t, err)
			}
			if tt.accept != 0 {
				require.NoError(t, a.Propose(2, tt.accept, successor(2, "x")))
			}
			err := a.Propose(tt.epoch, tt.rank, tt.p)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			rank, accepted, err := a.Prepare(2, 100)
			require.NoError(t, err)
			assert.Equal(t, tt.rank, rank)
			assert.Equal(t, tt.p, accepted)
			assert.Equal(t, base(), a.Latest(), "accepting is not committing")
		})
	}
}

func TestProposeKeepsACopy(t *testing.T) {
	a := projection.NewAcceptor(base())
	p := successor(2, "x")
	require.NoError(t, a.Propose(2, 1, p))
	p.Sequencer = "changed"
	_, accepted, err := a.Prepare(2, 2)
	require.NoError(t, err)
	assert.Equal(t, successor(2, "x"), accepted)
}

func TestCommit(t *testing.T) {
	tests := []struct {
		name       string
		p          *projection.Projection
		want       error
		wantLatest *projection.Projection
	}{
		{name: "newer", p: successor(2, "x"), wantLatest: successor(2, "x")},
		{name: "skips epochs", p: successor(9, "x"), wantLatest: successor(9, "x")},
		{name: "same again", p: base(), wantLatest: base()},
		{name: "older", p: successor(0, "x"), wantLatest: base()},
		{name: "conflicting", p: successor(1, "x"), want: projection.ErrConflict, wantLatest: base()},
		{name: "nil", p: nil, want: projection.ErrInvalid, wantLatest: base()},
		{name: "invalid", p: proj(3), want: projection.ErrInvalid, wantLatest: base()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := projection.NewAcceptor(base())
			err := a.Commit(tt.p)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantLatest, a.Latest())
		})
	}
}

func TestCommitDiscardsOldEpochs(t *testing.T) {
	a := projection.NewAcceptor(base())
	_, _, err := a.Prepare(2, 5)
	require.NoError(t, err)
	require.NoError(t, a.Propose(2, 5, successor(2, "x")))

	// Committing epoch 2 frees its slot and opens epoch 3's, empty.
	require.NoError(t, a.Commit(successor(2, "x")))
	_, _, err = a.Prepare(2, 9)
	require.ErrorIs(t, err, projection.ErrStaleEpoch)
	r, acc, err := a.Prepare(3, 1)
	require.NoError(t, err, "epoch 3 starts with no promise")
	require.Zero(t, r)
	require.Nil(t, acc)
}

// TestEpochsAreContiguous: an acceptor promises and accepts only the epoch
// after its latest committed one. A proposer that missed epoch 2 cannot get
// a successor of epoch 1 chosen for epoch 3 (the history would fork: epoch
// 2's segments, where appends were acknowledged, would vanish); once epoch 2
// is committed, epoch 3 is open.
func TestEpochsAreContiguous(t *testing.T) {
	a := projection.NewAcceptor(base())
	_, _, err := a.Prepare(3, 5)
	require.ErrorIs(t, err, projection.ErrEpochGap)
	p3 := successor(3, "skip")
	require.ErrorIs(t, a.Propose(3, 5, p3), projection.ErrEpochGap)
	assert.Equal(t, projection.AcceptorState{Latest: base()}, a.State(), "a refused request changes nothing")

	require.NoError(t, a.Commit(successor(2, "x")))
	_, _, err = a.Prepare(3, 5)
	require.NoError(t, err)
	_, _, err = a.Prepare(4, 5)
	require.ErrorIs(t, err, projection.ErrEpochGap)
}

// TestAcceptorStateRestores: an acceptor restarted from the State its host
// saved keeps its promise and its accepted value, so a restarted layout
// server never forgets a promise.
func TestAcceptorStateRestores(t *testing.T) {
	a := projection.NewAcceptor(base())
	_, _, err := a.Prepare(2, 7)
	require.NoError(t, err)
	require.NoError(t, a.Propose(2, 7, successor(2, "v")))
	_, _, err = a.Prepare(2, 9)
	require.NoError(t, err)
	st := a.State()
	require.Equal(t, uint64(9), st.Promised)
	require.Equal(t, uint64(7), st.AcceptedRank)

	b, err := projection.RestoreAcceptor(st)
	require.NoError(t, err)
	require.Equal(t, st, b.State())
	_, _, err = b.Prepare(2, 8)
	require.ErrorIs(t, err, projection.ErrRejected, "the promise of rank 9 survives")
	r, acc, err := b.Prepare(2, 10)
	require.NoError(t, err)
	require.Equal(t, uint64(7), r)
	require.Equal(t, successor(2, "v"), acc, "the accepted value survives")

	for name, bad := range map[string]projection.AcceptorState{
		"no latest":                 {},
		"accepted of another epoch": {Latest: base(), Promised: 3, AcceptedRank: 3, Accepted: successor(3, "v")},
		"accepted above promise":    {Latest: base(), Promised: 3, AcceptedRank: 4, Accepted: successor(2, "v")},
		"accepted at rank zero":     {Latest: base(), Accepted: successor(2, "v")},
	} {
		_, err := projection.RestoreAcceptor(bad)
		require.ErrorIs(t, err, projection.ErrInvalid, name)
	}
}

// TestPaxosScenarios walks through the classic cases by hand: three
// acceptors, two proposers, epoch 2.
func TestPaxosScenarios(t *testing.T) {
	v1, v2 := successor(2, "one"), successor(2, "two")
	tests := []struct {
		name string
		run  func(t *testing.T, acc []*projection.Acceptor)
	}{
		{
			name: "a later proposer adopts a value it sees",
			run: func(t *testing.T, acc []*projection.Acceptor) {
				for _, a := range acc[:2] {
					_, _, err := a.Prepare(2, 1)
					require.NoError(t, err)
				}
				require.NoError(t, acc[0].Propose(2, 1, v1)) // v1 reaches only A
				// P2 prepares on A and B at rank 2 and sees v1 on A.
				var best *projection.Projection
				var bestRank uint64
				for _, a := range acc[:2] {
					r, v, err := a.Prepare(2, 2)
					require.NoError(t, err)
					if v != nil && r > bestRank {
						best, bestRank = v, r
					}
				}
				require.Equal(t, v1, best)
				// P1's late proposal to B loses to the promise of rank 2.
				require.ErrorIs(t, acc[1].Propose(2, 1, v1), projection.ErrRejected)
				require.NoError(t, acc[1].Propose(2, 2, best))
				require.NoError(t, acc[2].Propose(2, 2, best))
			},
		},
		{
			name: "an unseen minority value is overwritten",
			run: func(t *testing.T, acc []*projection.Acceptor) {
				_, _, err := acc[0].Prepare(2, 1)
				require.NoError(t, err)
				require.NoError(t, acc[0].Propose(2, 1, v1)) // v1 only on A, never chosen
				for _, a := range acc[1:] {
					r, v, err := a.Prepare(2, 2)
					require.NoError(t, err)
					require.Zero(t, r)
					require.Nil(t, v)
				}
				for _, a := range acc {
					require.NoError(t, a.Propose(2, 2, v2))
				}
				for _, a := range acc {
					require.NoError(t, a.Commit(v2))
					assert.Equal(t, v2, a.Latest())
				}
			},
		},
		{
			name: "a committed epoch is closed to proposers",
			run: func(t *testing.T, acc []*projection.Acceptor) {
				require.NoError(t, acc[0].Commit(v1))
				_, _, err := acc[0].Prepare(2, 9)
				require.ErrorIs(t, err, projection.ErrStaleEpoch)
				require.ErrorIs(t, acc[0].Propose(2, 9, v2), projection.ErrStaleEpoch)
				require.ErrorIs(t, acc[0].Commit(v2), projection.ErrConflict)
				require.NoError(t, acc[0].Commit(v1))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := make([]*projection.Acceptor, 3)
			for i := range acc {
				acc[i] = projection.NewAcceptor(base())
			}
			tt.run(t, acc)
		})
	}
}

// proposer is a Paxos proposer driven one message at a time by
// TestPaxosInterleavings.
type proposer struct {
	id      int
	own     *projection.Projection
	attempt int
	rank    uint64
	phase   int   // 0 prepare, 1 propose, 2 commit, 3 done
	pending []int // acceptors still to be sent this phase's message
	granted int   // replies that said yes this phase
	best    *projection.Projection
	bestAt  uint64
	value   *projection.Projection // the value proposed (phase 1) or chosen (phase 2)
}

// start begins a new attempt with a higher rank.
func (p *proposer) start(r *rand.Rand, acceptors, proposers int) {
	p.attempt++
	p.rank = uint64(p.attempt*proposers + p.id + 1)
	p.phase = 0
	p.granted = 0
	p.best, p.bestAt = nil, 0
	p.pending = r.Perm(acceptors)
}

// TestPaxosInterleavings races proposers for one epoch over three acceptors
// under many seeded interleavings with message loss, and checks that no two
// different values are ever chosen (accepted by a majority at one rank) and
// that every proposer that decides, decides the chosen value.
func TestPaxosInterleavings(t *testing.T) {
	const (
		acceptors = 3
		majority  = acceptors/2 + 1
		seeds     = 2000
		maxSteps  = 400
	)
	decided := 0
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		nprop := 2 + r.IntN(2)
		loss := r.Float64() * 0.3
		acc := make([]*projection.Acceptor, acceptors)
		for i := range acc {
			acc[i] = projection.NewAcceptor(base())
		}
		props := make([]*proposer, nprop)
		for i := range props {
			props[i] = &proposer{id: i, own: successor(2, fmt.Sprint(i))}
			props[i].start(r, acceptors, nprop)
		}
		// votes[rank][acceptor] is the value an acceptor accepted at rank.
		votes := map[uint64]map[int]*projection.Projection{}
		var chosen *projection.Projection
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
		}
		for range maxSteps {
			var live []*proposer
			for _, p := range props {
				if p.phase != 3 {
					live = append(live, p)
				}
			}
			if len(live) == 0 {
				break
			}
			p := live[r.IntN(len(live))]
			if len(p.pending) == 0 && p.phase == 2 {
				p.phase = 3
				continue
			}
			if len(p.pending) == 0 {
				// Every message of this phase was answered or lost without a
				// majority: try again with a higher rank.
				p.start(r, acceptors, nprop)
				continue
			}
			to := p.pending[0]
			p.pending = p.pending[1:]
			if r.Float64() < loss {
				continue // the request or its reply was lost
			}
			a := acc[to]
			switch p.phase {
			case 0:
				rank, v, err := a.Prepare(2, p.rank)
				switch {
				case err == nil:
					p.granted++
					if v != nil && rank > p.bestAt {
						p.best, p.bestAt = v, rank
					}
				case errorsIs(err, projection.ErrStaleEpoch):
					p.phase = 3 // someone committed epoch 2; learn it
					if !a.Latest().Equal(chosen) {
						fail("acceptor %d committed %v, chosen %v", to, a.Latest(), chosen)
					}
					continue
				case errorsIs(err, projection.ErrRejected):
				default:
					fail("prepare: %v", err)
				}
				if p.granted >= majority {
					p.value = p.own
					if p.best != nil {
						p.value = p.best
					}
					p.phase, p.granted, p.pending = 1, 0, r.Perm(acceptors)
				}
			case 1:
				err := a.Propose(2, p.rank, p.value)
				switch {
				case err == nil:
					p.granted++
					if votes[p.rank] == nil {
						votes[p.rank] = map[int]*projection.Projection{}
					}
					votes[p.rank][to] = p.value
					if len(votes[p.rank]) >= majority {
						if chosen == nil {
							chosen = p.value
						} else if !chosen.Equal(p.value) {
							fail("two values chosen: %v and %v", chosen, p.value)
						}
					}
				case errorsIs(err, projection.ErrStaleEpoch):
					p.phase = 3
					continue
				case errorsIs(err, projection.ErrRejected):
				default:
					fail("propose: %v", err)
				}
				if p.granted >= majority {
					if !p.value.Equal(chosen) {
						fail("proposer %d decided %v, chosen %v", p.id, p.value, chosen)
					}
					p.phase, p.pending = 2, r.Perm(acceptors)
					decided++
				}
			case 2:
				if err := a.Commit(p.value); err != nil {
					fail("commit: %v", err)
				}
				if len(p.pending) == 0 {
					p.phase = 3
				}
			}
		}
		for i, a := range acc {
			if l := a.Latest(); l.Epoch == 2 && !l.Equal(chosen) {
				fail("acceptor %d committed %v, chosen %v", i, l, chosen)
			}
		}
	}
	t.Logf("%d seeds, %d decisions", seeds, decided)
	assert.Greater(t, decided, seeds/2, "the interleavings should mostly reach a decision")
}

// TestRewind: a reader goes back to the tail of every reset after the epoch
// it took its position in, and to no other.
func TestRewind(t *testing.T) {
	p := successor(9, "r")
	p.Resets = []projection.Reset{{Epoch: 3, Tail: 40}, {Epoch: 6, Tail: 70}, {Epoch: 8, Tail: 55}}
	require.NoError(t, p.Validate())
	assert.Equal(t, storage.Address(100), p.Rewind(100, 8), "no reset after epoch 8")
	assert.Equal(t, storage.Address(55), p.Rewind(100, 6))
	assert.Equal(t, storage.Address(40), p.Rewind(100, 2))
	assert.Equal(t, storage.Address(30), p.Rewind(30, 2), "a reader below every reset stays")
	p.Resets = append(p.Resets, projection.Reset{Epoch: 7, Tail: 1})
	require.ErrorIs(t, p.Validate(), projection.ErrInvalid, "resets out of order")
}
