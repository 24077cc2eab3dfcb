package corfu_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// handBuilt returns a projection at epoch 3 with segs, checked valid, so
// that a table of them tests what it means to.
func handBuilt(t *testing.T, segs ...projection.Segment) *projection.Projection {
	t.Helper()
	p := &projection.Projection{Epoch: 3, Sequencer: "seq", Layout: []projection.NodeID{"layout0"}, Segments: segs}
	require.NoError(t, p.Validate())
	return p
}

// handSeg is a segment [start, end) at base with the given chains (end 0: the
// open segment).
func handSeg(start, end, base storage.Address, stripes ...projection.Chain) projection.Segment {
	return projection.Segment{Start: start, End: end, Base: base, Stripes: stripes}
}

// handChain is a chain, head first.
func handChain(nodes ...projection.NodeID) projection.Chain { return nodes }

func TestShortChains(t *testing.T) {
	tests := []struct {
		name     string
		segs     []projection.Segment
		replicas int
		want     []corfu.Join
	}{
		{
			name:     "only the open segment",
			segs:     []projection.Segment{handSeg(0, 0, 0, handChain("a", "b"))},
			replicas: 2,
		},
		{
			name:     "short chain takes the open chain's new node",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("b")), handSeg(4, 0, 4, handChain("s", "b"))},
			replicas: 2,
			want:     []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}},
		},
		{
			name:     "full chain left alone",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("a", "b")), handSeg(4, 0, 4, handChain("s", "b"))},
			replicas: 2,
		},
		{
			name:     "chain longer than replicas left alone",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("a", "b", "c")), handSeg(4, 0, 4, handChain("s", "b"))},
			replicas: 2,
		},
		{
			name: "segment with another stripe count left alone",
			segs: []projection.Segment{
				handSeg(0, 4, 0, handChain("a")),
				handSeg(4, 0, 4, handChain("s", "a"), handChain("c", "d")),
			},
			replicas: 2,
		},
		{
			name: "node in another stripe of the segment not proposed",
			segs: []projection.Segment{
				handSeg(0, 4, 0, handChain("a"), handChain("d")),
				handSeg(4, 0, 2, handChain("d", "a"), handChain("c", "s")),
			},
			replicas: 2,
			// d, the only node stripe 0 lacks, holds stripe 1 of the
			// closed segment; stripe 1 takes c.
			want: []corfu.Join{{Start: 0, Stripe: 1, Node: "c"}},
		},
		{
			name:     "short by two takes two, in chain order",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("a")), handSeg(4, 0, 4, handChain("a", "s", "t"))},
			replicas: 3,
			want:     []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}, {Start: 0, Stripe: 0, Node: "t"}},
		},
		{
			name:     "takes only as many as it is short of",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("a")), handSeg(4, 0, 4, handChain("s", "t", "a"))},
			replicas: 2,
			want:     []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}},
		},
		{
			name:     "the open chain has fewer to offer",
			segs:     []projection.Segment{handSeg(0, 4, 0, handChain("a")), handSeg(4, 0, 4, handChain("s", "a"))},
			replicas: 3,
			want:     []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}},
		},
		{
			name: "every closed segment of the open one's stripe count",
			segs: []projection.Segment{
				handSeg(0, 4, 0, handChain("a"), handChain("c", "d")),
				handSeg(4, 6, 2, handChain("x")),
				handSeg(6, 10, 4, handChain("a", "b"), handChain("d")),
				handSeg(10, 0, 6, handChain("a", "b"), handChain("d", "c")),
			},
			replicas: 2,
			want: []corfu.Join{
				{Start: 0, Stripe: 0, Node: "b"},
				{Start: 6, Stripe: 1, Node: "c"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := handBuilt(t, tt.segs...)
			before := p.Clone()
			got := corfu.ShortChains(p, tt.replicas)
			assert.Equal(t, tt.want, got)
			assert.True(t, before.Equal(p), "ShortChains left its projection alone")
			// What it proposes makes a valid next projection.
			next, err := corfu.AddReplicas(got)(p.Clone(), 0)
			require.NoError(t, err)
			next.Epoch = p.Epoch + 1
			require.NoError(t, projection.ValidateNext(p, next))
		})
	}
}

func TestAddReplicas(t *testing.T) {
	// Three segments: [0, 6) and [6, 10) closed, short of a replica in
	// each stripe, and the open one from 10.
	full := []projection.Segment{
		handSeg(0, 6, 0, handChain("a"), handChain("c")),
		handSeg(6, 10, 3, handChain("a"), handChain("c")),
		handSeg(10, 0, 5, handChain("s", "a"), handChain("t", "c")),
	}
	tests := []struct {
		name  string
		segs  []projection.Segment
		joins []corfu.Join
		want  []projection.Segment
	}{
		{
			name:  "at the head of the closed chain",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}},
			want: []projection.Segment{
				handSeg(0, 6, 0, handChain("s", "a"), handChain("c")),
				full[1], full[2],
			},
		},
		{
			name:  "several joins",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 1, Node: "t"}, {Start: 6, Stripe: 0, Node: "s"}, {Start: 6, Stripe: 1, Node: "t"}},
			want: []projection.Segment{
				handSeg(0, 6, 0, handChain("a"), handChain("t", "c")),
				handSeg(6, 10, 3, handChain("s", "a"), handChain("t", "c")),
				full[2],
			},
		},
		{
			name:  "the same join twice adds once",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}, {Start: 0, Stripe: 0, Node: "s"}},
			want: []projection.Segment{
				handSeg(0, 6, 0, handChain("s", "a"), handChain("c")),
				full[1], full[2],
			},
		},
		{
			name:  "segment gone: trimmed off the front",
			segs:  full[1:],
			joins: []corfu.Join{{Start: 0, Stripe: 0, Node: "s"}, {Start: 6, Stripe: 0, Node: "s"}},
			want: []projection.Segment{
				handSeg(6, 10, 3, handChain("s", "a"), handChain("c")),
				full[2],
			},
		},
		{
			name:  "no segment starts there",
			segs:  full,
			joins: []corfu.Join{{Start: 2, Stripe: 0, Node: "s"}},
			want:  full,
		},
		{
			name:  "the open segment is no closed chain",
			segs:  full,
			joins: []corfu.Join{{Start: 10, Stripe: 0, Node: "x"}},
			want:  full,
		},
		{
			name:  "no such stripe",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 2, Node: "s"}},
			want:  full,
		},
		{
			name:  "node in another stripe of the segment",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 0, Node: "c"}},
			want:  full,
		},
		{
			name:  "node in the chain already",
			segs:  full,
			joins: []corfu.Join{{Start: 0, Stripe: 0, Node: "a"}},
			want:  full,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := handBuilt(t, tt.segs...)
			before := cur.Clone()
			next, err := corfu.AddReplicas(tt.joins)(cur, 10)
			require.NoError(t, err)
			assert.True(t, before.Equal(cur), "the change left cur alone")
			assert.Equal(t, tt.want, next.Segments)
			assert.Equal(t, cur.Epoch, next.Epoch, "Reconfigure sets the epoch, not the change")
			next.Epoch = cur.Epoch + 1
			require.NoError(t, projection.ValidateNext(cur, next))

			again, err := corfu.AddReplicas(tt.joins)(next, 10)
			require.NoError(t, err)
			assert.Equal(t, next.Segments, again.Segments, "applying the joins again changes nothing")
		})
	}
}

// latestCommitted returns the newest projection any of e's layout servers
// committed.
func (e *env) latestCommitted() *projection.Projection {
	var best *projection.Projection
	for _, acc := range e.cl.Layouts {
		if p := acc.Latest(); best == nil || p.Epoch > best.Epoch {
			best = p
		}
	}
	return best
}

// crashUnit takes unit id off the network, as a crash does; the unit keeps its
// state.
func (e *env) crashUnit(id projection.NodeID) { e.cl.Net.Remove(id) }

// unitState is what one unit holds at one local address.
type unitState struct {
	State storage.State
	Data  []byte
}

func inspectAt(u *storage.Memory, local storage.Address) unitState {
	s, b := u.Inspect(local)
	return unitState{s, b}
}

// heldBelow returns every local address below end that u stores, with what it
// holds there.
func heldBelow(u *storage.Memory, end storage.Address) map[storage.Address]unitState {
	out := map[storage.Address]unitState{}
	u.Ascend(func(a storage.Address, s storage.State, b []byte) bool {
		if a < end {
			out[a] = unitState{s, b}
		}
		return true
	})
	return out
}

// TestRebuildEndToEnd: a closed chain left short by ReplaceUnit is rebuilt
// onto the unit that took over in the open segment. The unit ends up with
// exactly what the surviving replica holds at the segment's local addresses
// (entries, junk, a trim, and a hole Rebuild filled), the committed
// projection names it as the chain's head, and it can then serve the
// segment alone once the old replica is gone too.
func TestRebuildEndToEnd(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 2}, nil)
	want := map[storage.Address]string{} // acknowledged entries
	appendOne := func(s string) storage.Address {
		t.Helper()
		a, err := e.c.Append(e.ctx, []byte(s))
		require.NoError(t, err)
		want[a] = s
		return a
	}
	for i := range 6 {
		appendOne(fmt.Sprintf("entry %d", i)) // 0..5
	}
	junkAt := e.token(1) // 6: stripe 0, filled by a client
	require.Equal(t, storage.Address(6), junkAt)
	require.NoError(t, e.c.Fill(e.ctx, junkAt))
	appendOne("entry 7")
	hole := e.token(1) // 8: stripe 0, handed out and never written
	require.Equal(t, storage.Address(8), hole)
	appendOne("entry 9")
	const trimmed = storage.Address(2) // stripe 0
	require.NoError(t, e.c.Trim(e.ctx, trimmed))
	delete(want, trimmed)

	e.crashUnit("unit0")
	p1, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit0", "spare0"))
	require.NoError(t, err)
	require.Len(t, p1.Segments, 2)
	closed := p1.Segments[0]
	require.Equal(t, storage.Address(10), closed.End, "closed at the tail")
	require.Equal(t, []projection.Chain{{"unit1"}, {"unit2", "unit3"}}, closed.Stripes, "the closed chain is short")
	require.Equal(t, []projection.Chain{{"spare0", "unit1"}, {"unit2", "unit3"}}, p1.Segments[1].Stripes)
	appendOne("entry 10") // in the open segment, on spare0
	appendOne("entry 11")

	joins := corfu.ShortChains(p1, 2)
	require.Equal(t, []corfu.Join{{Start: 0, Stripe: 0, Node: "spare0"}}, joins)
	np, err := e.c.Rebuild(e.ctx, joins)
	require.NoError(t, err)
	require.NotNil(t, np)
	assert.Equal(t, p1.Epoch+1, np.Epoch)
	require.NoError(t, projection.ValidateNext(p1, np))
	assert.True(t, np.Equal(e.latestCommitted()), "Rebuild returns the committed projection")
	assert.Equal(t, []projection.Chain{{"spare0", "unit1"}, {"unit2", "unit3"}}, np.Segments[0].Stripes,
		"the joining unit heads the closed chain")
	assert.Empty(t, corfu.ShortChains(np, 2), "nothing is short any more")

	// The joining unit holds, at the closed segment's local addresses of
	// stripe 0, exactly what the surviving replica holds, and nothing
	// else below the open segment.
	spare0, unit1 := e.cl.Unit("spare0"), e.cl.Unit("unit1")
	base := np.Segments[1].Base
	wantHeld := map[storage.Address]unitState{}
	for g := closed.Start; g < closed.End; g += 2 {
		loc, err := np.Locate(g)
		require.NoError(t, err)
		require.Equal(t, 0, loc.Stripe)
		wantHeld[loc.Local] = inspectAt(unit1, loc.Local)
		switch g {
		case trimmed:
			assert.Equal(t, storage.StateTrimmed, wantHeld[loc.Local].State, "address %d", g)
		case junkAt, hole:
			assert.Equal(t, storage.StateJunk, wantHeld[loc.Local].State, "address %d: the hole was filled through the chain", g)
		default:
			assert.Equal(t, storage.StateData, wantHeld[loc.Local].State, "address %d", g)
		}
	}
	assert.Len(t, wantHeld, 5)
	assert.Equal(t, wantHeld, heldBelow(spare0, base))
	assert.Equal(t, wantHeld, heldBelow(unit1, base), "the survivor holds the same, and nothing else")

	// Every acknowledged entry reads back, for this client and a new one;
	// the junk and the trim read as such.
	reader := e.open(nil)
	for _, c := range []*corfu.Client{e.c, reader} {
		for a, s := range want {
			got, err := c.Read(e.ctx, a)
			require.NoError(t, err, "address %d", a)
			assert.Equal(t, s, string(got.Data))
		}
		for _, a := range []storage.Address{junkAt, hole} {
			_, err := c.Read(e.ctx, a)
			assert.ErrorIs(t, err, corfu.ErrJunk, "address %d", a)
		}
		_, err := c.Read(e.ctx, trimmed)
		assert.ErrorIs(t, err, corfu.ErrTrimmed)
	}

	// The old replica goes too: the rebuilt unit serves the segment alone.
	e.crashUnit("unit1")
	p3, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit1", "spare1"))
	require.NoError(t, err)
	assert.Equal(t, projection.Chain{"spare0"}, p3.Segments[0].Stripes[0])
	for _, c := range []*corfu.Client{e.c, e.open(nil)} {
		for a, s := range want {
			got, err := c.Read(e.ctx, a)
			require.NoError(t, err, "address %d, from the rebuilt replica", a)
			assert.Equal(t, s, string(got.Data))
		}
		for _, a := range []storage.Address{junkAt, hole} {
			_, err := c.Read(e.ctx, a)
			assert.ErrorIs(t, err, corfu.ErrJunk, "address %d", a)
		}
		_, err := c.Read(e.ctx, trimmed)
		assert.ErrorIs(t, err, corfu.ErrTrimmed)
	}
}

// shortTwoStripes builds a cluster of chains [unit0 unit1] [unit2 unit3]
// with entries at 0..5 (address 4 junk), whose heads were replaced by
// spare0 and spare1: both closed chains are short, and ShortChains names
// spare0 for stripe 0 and spare1 for stripe 1.
func shortTwoStripes(t *testing.T) (*env, *projection.Projection) {
	t.Helper()
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 2}, nil)
	for i := range 6 {
		if i == 4 {
			require.NoError(t, e.c.Fill(e.ctx, e.token(1)))
			continue
		}
		_, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("entry %d", i)))
		require.NoError(t, err)
	}
	e.crashUnit("unit0")
	e.crashUnit("unit2")
	_, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit0", "spare0"))
	require.NoError(t, err)
	p, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit2", "spare1"))
	require.NoError(t, err)
	require.Equal(t, []projection.Chain{{"unit1"}, {"unit3"}}, p.Segments[0].Stripes)
	require.Equal(t, []corfu.Join{{Start: 0, Stripe: 0, Node: "spare0"}, {Start: 0, Stripe: 1, Node: "spare1"}}, corfu.ShortChains(p, 2))
	return e, p
}

// TestRebuildConflict: a joining unit that already holds, at a local
// address of the chain it joins, something other than the chain holds there
// cannot join it (ErrRebuildConflict): its own content stays, and the
// projection leaves that chain as it was. A unit that holds the very same
// content joins.
func TestRebuildConflict(t *testing.T) {
	other := rawEntry(t, []byte("not the chain's"))
	tests := []struct {
		name     string
		global   storage.Address // stripe 0: spare0 joins unit1's chain
		plant    func(t *testing.T, u *storage.Memory, local storage.Address, chain unitState)
		conflict bool
	}{
		{name: "other entry where the chain has an entry", global: 2, conflict: true,
			plant: func(t *testing.T, u *storage.Memory, local storage.Address, _ unitState) {
				require.NoError(t, u.Write(t.Context(), u.Epoch(), local, other))
			}},
		{name: "junk where the chain has an entry", global: 2, conflict: true,
			plant: func(t *testing.T, u *storage.Memory, local storage.Address, _ unitState) {
				require.NoError(t, u.Fill(t.Context(), u.Epoch(), local))
			}},
		{name: "an entry where the chain has junk", global: 4, conflict: true,
			plant: func(t *testing.T, u *storage.Memory, local storage.Address, _ unitState) {
				require.NoError(t, u.Write(t.Context(), u.Epoch(), local, other))
			}},
		{name: "the same entry", global: 2,
			plant: func(t *testing.T, u *storage.Memory, local storage.Address, chain unitState) {
				require.Equal(t, storage.StateData, chain.State)
				require.NoError(t, u.Write(t.Context(), u.Epoch(), local, chain.Data))
			}},
		{name: "the same junk", global: 4,
			plant: func(t *testing.T, u *storage.Memory, local storage.Address, chain unitState) {
				require.Equal(t, storage.StateJunk, chain.State)
				require.NoError(t, u.Fill(t.Context(), u.Epoch(), local))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, p := shortTwoStripes(t)
			loc, err := p.Locate(tt.global)
			require.NoError(t, err)
			require.Equal(t, 0, loc.Stripe)
			spare0 := e.cl.Unit("spare0")
			chainHolds := inspectAt(e.cl.Unit("unit1"), loc.Local)
			tt.plant(t, spare0, loc.Local, chainHolds)
			planted := inspectAt(spare0, loc.Local)

			np, err := e.c.Rebuild(e.ctx, corfu.ShortChains(p, 2))
			require.NotNil(t, np)
			assert.True(t, np.Equal(e.latestCommitted()))
			assert.Equal(t, p.Epoch+1, np.Epoch, "the join that can go on is committed")
			assert.Equal(t, projection.Chain{"spare1", "unit3"}, np.Segments[0].Stripes[1])
			assert.Equal(t, planted, inspectAt(spare0, loc.Local), "the joining unit's content stays")
			if !tt.conflict {
				require.NoError(t, err)
				assert.Equal(t, projection.Chain{"spare0", "unit1"}, np.Segments[0].Stripes[0])
				return
			}
			require.ErrorIs(t, err, corfu.ErrRebuildConflict)
			assert.Contains(t, err.Error(), "spare0")
			assert.NotContains(t, err.Error(), "spare1")
			assert.Equal(t, projection.Chain{"unit1"}, np.Segments[0].Stripes[0], "the conflicting unit did not join")
			assert.Equal(t, []corfu.Join{{Start: 0, Stripe: 0, Node: "spare0"}}, corfu.ShortChains(np, 2))

			// The chain still serves what it held.
			for _, c := range []*corfu.Client{e.c, e.open(nil)} {
				got, err := c.Read(e.ctx, tt.global)
				if chainHolds.State == storage.StateJunk {
					assert.ErrorIs(t, err, corfu.ErrJunk)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, fmt.Sprintf("entry %d", tt.global), string(got.Data))
			}
		})
	}

	t.Run("the only join conflicts: no new epoch", func(t *testing.T) {
		e, p := shortTwoStripes(t)
		loc, err := p.Locate(0)
		require.NoError(t, err)
		spare0 := e.cl.Unit("spare0")
		require.NoError(t, spare0.Write(e.ctx, spare0.Epoch(), loc.Local, other))
		np, err := e.c.Rebuild(e.ctx, []corfu.Join{{Start: 0, Stripe: 0, Node: "spare0"}})
		require.ErrorIs(t, err, corfu.ErrRebuildConflict)
		require.NotNil(t, np)
		assert.Equal(t, p.Epoch, np.Epoch)
		assert.True(t, p.Equal(e.latestCommitted()), "nothing was committed")
		assert.Equal(t, projection.Chain{"unit1"}, e.latestCommitted().Segments[0].Stripes[0])
	})
}

// TestRebuildSegmentGone: a join for a segment that is no longer in the
// projection, or whose node is in its chain already, is done: Rebuild
// reports no error and copies nothing.
func TestRebuildSegmentGone(t *testing.T) {
	e, p := shortTwoStripes(t)
	spare0 := e.cl.Unit("spare0")
	before := heldBelow(spare0, storage.MaxAddress)
	np, err := e.c.Rebuild(e.ctx, []corfu.Join{{Start: 1, Stripe: 0, Node: "spare0"}, {Start: 0, Stripe: 0, Node: "unit1"}})
	require.NoError(t, err)
	require.NotNil(t, np)
	assert.Equal(t, p.Segments, np.Segments, "no chain changed")
	assert.Equal(t, before, heldBelow(spare0, storage.MaxAddress), "nothing copied")
}

// TestRebuildCopiesBeforeJoining runs a rebuild as it is and with each of
// two broken variants (internal/mutant): one that adds the unit to the
// chain before copying anything to it, one that copies entries and trims
// but not junk. The check is the joining unit's content against the
// surviving replica's, then reads served by the rebuilt unit alone.
func TestRebuildCopiesBeforeJoining(t *testing.T) {
	for name, old := range map[string]mutant.Set{"joins early": {RebuildJoinsEarly: true}, "skips junk": {RebuildSkipsJunk: true}} {
		t.Run(name, func(t *testing.T) {
			variants(t, old, func(t *testing.T, mut mutant.Set) string {
				e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Spares: 2}, nil)
				want := map[storage.Address]string{}
				for i := range 6 {
					if i == 3 {
						require.NoError(t, e.c.Fill(e.ctx, e.token(1)))
						continue
					}
					a, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("entry %d", i)))
					require.NoError(t, err)
					want[a] = fmt.Sprintf("entry %d", i)
				}
				e.crashUnit("unit0")
				p, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit0", "spare0"))
				require.NoError(t, err)
				rebuilder := openWith(t, e.cl, e.net, mut)
				np, err := rebuilder.Rebuild(e.ctx, corfu.ShortChains(p, 2))
				require.NoError(t, err)
				require.Equal(t, projection.Chain{"spare0", "unit1"}, np.Segments[0].Stripes[0])
				base := np.Segments[1].Base
				if got, want := heldBelow(e.cl.Unit("spare0"), base), heldBelow(e.cl.Unit("unit1"), base); !assert.ObjectsAreEqual(want, got) {
					return fmt.Sprintf("the joining unit holds %v, the chain %v", got, want)
				}
				e.crashUnit("unit1")
				_, err = e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit1", "spare1"))
				require.NoError(t, err)
				for a, s := range want {
					if got, err := e.c.Read(e.ctx, a); err != nil || string(got.Data) != s {
						return fmt.Sprintf("address %d reads %q, %v", a, got.Data, err)
					}
				}
				if _, err := e.c.Read(e.ctx, 3); !errors.Is(err, corfu.ErrJunk) {
					return fmt.Sprintf("address 3 reads %v, not junk", err)
				}
				return ""
			})
		})
	}
}

// TestRebuildOntoUnitOfAnotherStripe: a unit that was a replica of stripe 0
// of a segment, was replaced, and is now proposed for stripe 1 of the same
// segment holds stripe 0's content at the very local addresses stripe 1
// uses (both stripes use the segment's local range). Rebuild must not let
// it join unless it holds what stripe 1 holds: here stripe 0's addresses
// were all trimmed on it, and stripe 1 holds acknowledged entries, never
// trimmed. Once the rest of stripe 1 is gone, those entries must still read
// back. (The detector takes this path by itself: a unit it replaced is a
// spare once it answers again, and may replace a unit of another stripe.)
func TestRebuildOntoUnitOfAnotherStripe(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
	want := map[storage.Address]string{}
	for i := range 6 {
		a, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("entry %d", i)))
		require.NoError(t, err)
		if a%2 == 0 {
			require.NoError(t, e.c.Trim(e.ctx, a)) // stripe 0: all of it trimmed
		} else {
			want[a] = fmt.Sprintf("entry %d", i)
		}
	}
	// unit0 (stripe 0) is replaced by the spare and rebuilt around.
	p, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit0", "spare0"))
	require.NoError(t, err)
	p, err = e.c.Rebuild(e.ctx, corfu.ShortChains(p, 2))
	require.NoError(t, err)
	require.NotContains(t, p.Units(), projection.NodeID("unit0"))
	// unit3 (stripe 1) crashes; unit0, back as a spare, replaces it.
	e.crashUnit("unit3")
	p, err = e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit3", "unit0"))
	require.NoError(t, err)
	require.Equal(t, projection.Chain{"unit2"}, p.Segments[0].Stripes[1])
	require.Contains(t, corfu.ShortChains(p, 2), corfu.Join{Start: 0, Stripe: 1, Node: "unit0"})

	np, rerr := e.c.Rebuild(e.ctx, []corfu.Join{{Start: 0, Stripe: 1, Node: "unit0"}})
	if slices.Contains(np.Segments[0].Stripes[1], "unit0") {
		// It joined: the acknowledged entries must outlive unit2.
		e.crashUnit("unit2")
		_, err = e.c.Reconfigure(e.ctx, corfu.ReplaceUnit("unit2", ""))
		require.NoError(t, err)
	}
	for a, s := range want {
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err, "address %d: an acknowledged entry, never trimmed", a)
		assert.Equal(t, s, string(got.Data), "address %d", a)
	}
	require.ErrorIs(t, rerr, corfu.ErrRebuildConflict, "unit0 holds trims where stripe 1 holds entries")
}
