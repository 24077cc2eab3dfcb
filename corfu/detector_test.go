package corfu_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// probeTimeout bounds a detector's probes in these tests: generous, since a
// crashed node (off the network) answers at once with ErrUnreachable and a
// live one in process answers at once too. It only keeps a probe of a live
// node on a loaded machine from counting as a miss.
const probeTimeout = time.Second

// eventLog records a detector's events; safe for concurrent use.
type eventLog struct {
	mu  sync.Mutex
	all []corfu.DetectorEvent
}

func (r *eventLog) add(ev corfu.DetectorEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, ev)
}

// list returns the events so far.
func (r *eventLog) list() []corfu.DetectorEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]corfu.DetectorEvent(nil), r.all...)
}

// kinds returns the events so far, each as "kind node>fresh".
func (r *eventLog) kinds() []string {
	var out []string
	for _, ev := range r.list() {
		out = append(out, fmt.Sprintf("%s %s>%s", ev.Kind, ev.Node, ev.Fresh))
	}
	return out
}

// of returns the events of kind so far.
func (r *eventLog) of(kind string) []corfu.DetectorEvent {
	var out []corfu.DetectorEvent
	for _, ev := range r.list() {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// detector returns a detector on a client of its own, over net if not nil
// (else the env's network), with the env's spares, and its event record.
func (e *env) detector(net transport.Caller, tune func(*corfu.DetectorConfig)) (*corfu.Detector, *eventLog) {
	e.t.Helper()
	c := e.open(func(cfg *corfu.Config) {
		if net != nil {
			cfg.Transport = net
		}
	})
	rec := &eventLog{}
	cfg := corfu.DetectorConfig{
		Interval: time.Millisecond,
		Timeout:  probeTimeout,
		Spares:   e.cl.UnitIDs[len(e.cl.UnitIDs)-e.cl.Options.Spares:],
		OnEvent:  rec.add,
	}
	if tune != nil {
		tune(&cfg)
	}
	return corfu.NewDetector(c, cfg), rec
}

// stepUntil runs d's rounds until done reports true, at most limit of
// them, and returns how many it ran (limit+1 if done never held).
func (e *env) stepUntil(d *corfu.Detector, limit int, done func() bool) int {
	for i := 1; i <= limit; i++ {
		d.Step(e.ctx)
		if done() {
			return i
		}
	}
	return limit + 1
}

// appendAll appends n entries and returns their addresses and contents.
func (e *env) appendAll(n int, prefix string) map[storage.Address]string {
	e.t.Helper()
	out := map[storage.Address]string{}
	for i := range n {
		s := fmt.Sprintf("%s %d", prefix, i)
		a, err := e.c.Append(e.ctx, []byte(s))
		require.NoError(e.t, err)
		out[a] = s
	}
	return out
}

// readsBack checks that every entry of want reads back, for the env's
// client and a new one.
func (e *env) readsBack(want map[storage.Address]string) {
	e.t.Helper()
	for _, c := range []*corfu.Client{e.c, e.open(nil)} {
		for a, s := range want {
			got, err := c.Read(e.ctx, a)
			require.NoError(e.t, err, "address %d", a)
			assert.Equal(e.t, s, string(got.Data), "address %d", a)
		}
	}
}

// TestDetectorReplacesCrashedUnit: chains of 2 and a spare; a unit of the
// open segment crashes. The detector suspects it after Misses rounds,
// replaces it with the spare in the same round, and rebuilds the closed
// chain the crash left short in the next; then it has nothing more to do.
// Appends land on the spare, and everything reads back, also once the
// other old replica is gone.
func TestDetectorReplacesCrashedUnit(t *testing.T) {
	for _, victim := range []projection.NodeID{"unit0", "unit1"} { // a head, a tail
		t.Run(string(victim), func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
			want := e.appendAll(6, "before")
			survivor := projection.NodeID("unit1")
			if victim == "unit1" {
				survivor = "unit0"
			}
			d, rec := e.detector(nil, nil)
			for range 3 {
				require.False(t, d.Step(e.ctx), "all is well: nothing to do")
			}
			require.Empty(t, rec.list())

			e.crashUnit(victim)
			replaced := func() bool { return len(rec.of("replace")) > 0 }
			steps := e.stepUntil(d, 10, replaced)
			assert.Equal(t, corfu.DefaultProbeMisses, steps, "replaced in the round it is suspected, not before")
			require.True(t, replaced(), "events: %v", rec.kinds())

			p := e.latestCommitted()
			assert.Equal(t, storage.Epoch(1), p.Epoch)
			require.Len(t, p.Segments, 2)
			open := p.Segments[1].Stripes
			assert.NotContains(t, p.Units(), victim, "the crashed unit left every chain that has another replica")
			assert.Len(t, open[0], 2)
			assert.Contains(t, open[0], projection.NodeID("spare0"))
			assert.Contains(t, open[0], survivor)
			assert.Equal(t, projection.Chain{"unit2", "unit3"}, open[1])
			assert.Equal(t, projection.Chain{survivor}, p.Segments[0].Stripes[0], "the closed chain is short")

			// Appends succeed, and the spare takes its share.
			after := e.appendAll(4, "after")
			for a, s := range after {
				want[a] = s
				loc, err := p.Locate(a)
				require.NoError(t, err)
				if loc.Stripe == 0 {
					st, b := e.cl.Unit("spare0").Inspect(loc.Local)
					require.Equal(t, storage.StateData, st, "address %d on the spare", a)
					assert.Contains(t, string(b), s)
				}
			}

			// The next round rebuilds the closed chain onto the spare.
			rebuilt := func() bool { return len(rec.of("rebuild")) > 0 }
			assert.Equal(t, 1, e.stepUntil(d, 5, rebuilt))
			require.True(t, rebuilt(), "events: %v", rec.kinds())
			p = e.latestCommitted()
			assert.Equal(t, storage.Epoch(2), p.Epoch)
			assert.Equal(t, projection.Chain{"spare0", survivor}, p.Segments[0].Stripes[0], "the closed chain has 2 replicas again")
			base := p.Segments[1].Base
			assert.Equal(t, heldBelow(e.cl.Unit(survivor), base), heldBelow(e.cl.Unit("spare0"), base), "the spare holds the closed chain's data")
			assert.Len(t, heldBelow(e.cl.Unit("spare0"), base), 3)

			for range 3 {
				assert.False(t, d.Step(e.ctx), "healed: nothing more to do")
			}
			assert.Equal(t, storage.Epoch(2), e.latestCommitted().Epoch)
			assert.Equal(t, []string{
				fmt.Sprintf("suspect %s>", victim),
				fmt.Sprintf("replace %s>spare0", victim),
				"rebuild >",
			}, rec.kinds())
			evs := rec.list()
			for _, ev := range evs {
				assert.NoError(t, ev.Err, "%s", ev.Kind)
			}
			assert.Equal(t, storage.Epoch(1), evs[1].Epoch)
			assert.Equal(t, storage.Epoch(2), evs[2].Epoch)
			e.readsBack(want)

			// The survivor goes too: the rebuilt spare serves the closed
			// segment alone.
			e.crashUnit(survivor)
			_, err := e.c.Reconfigure(e.ctx, corfu.ReplaceUnit(survivor, ""))
			require.NoError(t, err)
			assert.Equal(t, projection.Chain{"spare0"}, e.latestCommitted().Segments[0].Stripes[0])
			e.readsBack(want)
		})
	}
}

// TestDetectorRun: Run heals as Step does, concurrently with a writer
// whose appends to the dead unit's chain fail fast meanwhile, and returns
// the ctx's error once it ends.
func TestDetectorRun(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
	want := e.appendAll(4, "before")
	rebuilt := make(chan struct{})
	var once sync.Once
	d, rec := e.detector(nil, func(cfg *corfu.DetectorConfig) {
		next := cfg.OnEvent
		cfg.OnEvent = func(ev corfu.DetectorEvent) {
			next(ev)
			if ev.Kind == "rebuild" && ev.Err == nil {
				once.Do(func() { close(rebuilt) })
			}
		}
	})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	e.crashUnit("unit2")
	// A writer appends while the detector heals: an append to the dead
	// unit's chain fails fast with ErrUnavailable, having stored nothing,
	// until the spare has taken its place; every other append succeeds.
	for i := 0; ; i++ {
		s := fmt.Sprintf("during %d", i)
		a, err := e.c.Append(e.ctx, []byte(s))
		if errors.Is(err, corfu.ErrUnavailable) {
			continue
		}
		require.NoError(t, err)
		want[a] = s
		select {
		case <-rebuilt:
		case <-e.ctx.Done():
			t.Fatalf("not healed; events: %v", rec.kinds())
		default:
			continue
		}
		break
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	p := e.latestCommitted()
	assert.NotContains(t, p.Units(), projection.NodeID("unit2"))
	for _, seg := range p.Segments {
		for _, chain := range seg.Stripes {
			assert.Len(t, chain, 2, "every chain back to 2 replicas: %v", p.Segments)
		}
	}
	kinds := rec.kinds()
	require.GreaterOrEqual(t, len(kinds), 3)
	assert.Equal(t, []string{"suspect unit2>", "replace unit2>spare0"}, kinds[:2])
	for _, ev := range rec.of("replace") {
		assert.NoError(t, ev.Err)
	}
	e.readsBack(want)
}

// TestDetectorNeedsMajority: a detector that reaches only one layout
// server of three, or that sees at least half the nodes it probes gone
// (the minority side of a partition), takes no action, though a unit is
// down. Once it sees the cluster again, it replaces the unit.
func TestDetectorNeedsMajority(t *testing.T) {
	tests := []struct {
		name    string
		cut     func(to transport.NodeID) bool // what the detector cannot reach
		suspect bool                           // whether it gets as far as suspecting
	}{
		{name: "one layout server of three", cut: func(to transport.NodeID) bool {
			return to == "layout1" || to == "layout2"
		}},
		{name: "half the nodes", suspect: true, cut: func(to transport.NodeID) bool {
			// unit0 is down for all; with unit1 and unit2, the detector
			// misses 3 of the 6 nodes it probes (4 units, the sequencer
			// and the spare).
			return to == "unit1" || to == "unit2"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
			want := e.appendAll(4, "before")
			dnet := &faultNet{next: e.cl.Net}
			d, rec := e.detector(dnet, nil)
			dnet.setRule(func(to transport.NodeID, _ *transport.Request) action {
				if tt.cut(to) {
					return refuse
				}
				return pass
			})
			e.crashUnit("unit0")
			for range 10 {
				assert.False(t, d.Step(e.ctx))
			}
			assert.Empty(t, rec.of("replace"), "events: %v", rec.kinds())
			assert.Equal(t, storage.Epoch(0), e.latestCommitted().Epoch, "no reconfiguration")
			assert.Equal(t, tt.suspect, len(rec.of("suspect")) > 0, "events: %v", rec.kinds())

			dnet.setRule(nil)
			replaced := func() bool { return len(rec.of("replace")) > 0 }
			assert.LessOrEqual(t, e.stepUntil(d, 10, replaced), corfu.DefaultProbeMisses)
			require.True(t, replaced(), "events: %v", rec.kinds())
			assert.Equal(t, storage.Epoch(1), e.latestCommitted().Epoch)
			assert.NotContains(t, e.latestCommitted().Units(), projection.NodeID("unit0"))
			for a, s := range e.appendAll(2, "after") {
				want[a] = s
			}
			e.readsBack(want)
		})
	}
}

// TestDetectorBlankIsNoReplica: a unit that answers as blank (it lost its
// data) is never a live replica. A crashed unit whose only chain-mate is
// blank keeps its place, though a spare is at hand: taking it out would
// leave the chain with nothing. With the chain-mate intact, the same crash
// is replaced.
func TestDetectorBlankIsNoReplica(t *testing.T) {
	for _, blank := range []bool{true, false} {
		t.Run(fmt.Sprintf("blank %v", blank), func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Spares: 1}, nil)
			e.appendAll(3, "before")
			if blank {
				e.reformat("unit0")
			}
			e.crashUnit("unit1")
			d, rec := e.detector(nil, nil)
			for range 10 {
				d.Step(e.ctx)
			}
			require.Len(t, rec.of("suspect"), 1, "events: %v", rec.kinds())
			assert.Equal(t, projection.NodeID("unit1"), rec.of("suspect")[0].Node)
			p := e.latestCommitted()
			if blank {
				assert.Empty(t, rec.of("replace"), "events: %v", rec.kinds())
				assert.Empty(t, rec.of("drop"), "events: %v", rec.kinds())
				assert.Equal(t, storage.Epoch(0), p.Epoch)
				assert.Equal(t, projection.Chain{"unit0", "unit1"}, p.Segments[0].Stripes[0], "the suspected unit keeps its place")
				return
			}
			require.Len(t, rec.of("replace"), 1, "events: %v", rec.kinds())
			assert.Equal(t, projection.NodeID("spare0"), rec.of("replace")[0].Fresh)
			assert.Equal(t, projection.Chain{"unit0", "spare0"}, p.Segments[len(p.Segments)-1].Stripes[0])
		})
	}
}

// TestDetectorLetsBlankUnitRejoin: a unit comes back blank and no client
// meets it. The detector lets it rejoin in the second round that finds it
// blank (one round is not enough: the reconfiguration that committed an
// epoch lets blank units join as its last step), without waiting for a
// reader to stumble on it; the unit is then in the new open segment, the
// next round rebuilds the closed chain it left, and everything reads back.
func TestDetectorLetsBlankUnitRejoin(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	want := e.appendAll(3, "before")
	e.reformat("unit1")
	d, rec := e.detector(nil, nil)
	rejoined := func() bool { return len(rec.of("rejoin")) > 0 }
	assert.Equal(t, 2, e.stepUntil(d, 10, rejoined), "events: %v", rec.kinds())
	require.True(t, rejoined(), "events: %v", rec.kinds())
	ev := rec.of("rejoin")[0]
	require.NoError(t, ev.Err)
	assert.Equal(t, projection.NodeID("unit1"), ev.Node)
	p := e.latestCommitted()
	assert.Equal(t, ev.Epoch, p.Epoch)
	require.Len(t, p.Segments, 2)
	assert.Equal(t, projection.Chain{"unit0"}, p.Segments[0].Stripes[0], "the blank unit left the chain whose data it lost")
	assert.Equal(t, projection.Chain{"unit0", "unit1"}, p.Segments[1].Stripes[0], "and is a replica of the new open segment")

	rebuilt := func() bool { return len(rec.of("rebuild")) > 0 }
	e.stepUntil(d, 5, rebuilt)
	require.True(t, rebuilt(), "events: %v", rec.kinds())
	require.NoError(t, rec.of("rebuild")[0].Err)
	assert.ElementsMatch(t, projection.Chain{"unit0", "unit1"}, e.latestCommitted().Segments[0].Stripes[0], "the closed chain has both replicas again")
	assert.Len(t, rec.of("rejoin"), 1, "events: %v", rec.kinds())
	for a, s := range e.appendAll(2, "after") {
		want[a] = s
	}
	e.readsBack(want)
}

// TestDetectorRejoinWaitsForSequencer: a blank unit cannot join while the
// sequencer does not answer (a join needs its tail), and with no standby
// to move it to, a reconfiguration every other round would only pile up
// epochs. The detector waits; once the sequencer is back, the unit rejoins.
func TestDetectorRejoinWaitsForSequencer(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	want := e.appendAll(3, "before")
	e.reformat("unit1")
	e.cl.Net.Remove("seq")
	d, rec := e.detector(nil, nil)
	for range 12 {
		d.Step(e.ctx)
	}
	assert.Empty(t, rec.of("rejoin"), "events: %v", rec.kinds())
	assert.Equal(t, storage.Epoch(0), e.latestCommitted().Epoch, "no epoch piled up")

	e.cl.Net.Register("seq", &transport.Server{Sequencer: e.cl.Sequencer})
	rejoined := func() bool { return len(rec.of("rejoin")) > 0 }
	e.stepUntil(d, 10, rejoined)
	require.True(t, rejoined(), "events: %v", rec.kinds())
	require.NoError(t, rec.of("rejoin")[0].Err)
	assert.Equal(t, projection.Chain{"unit0", "unit1"}, e.latestCommitted().Segments[1].Stripes[0])
	for a, s := range e.appendAll(2, "after") {
		want[a] = s
	}
	e.readsBack(want)
}

// TestDetectorSkipsBlankSpare: a blank spare is not live either: the
// detector does not put it into a chain. With MinReplicas 1 the crashed
// unit just leaves its chain, which keeps its other replica, and appends go
// on; the blank spare stays out, so no chain grows.
func TestDetectorSkipsBlankSpare(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Spares: 1}, nil)
	want := e.appendAll(3, "before")
	e.reformat("spare0")
	e.crashUnit("unit1")
	d, rec := e.detector(nil, nil)
	replaced := func() bool { return len(rec.of("replace")) > 0 }
	assert.Equal(t, corfu.DefaultProbeMisses, e.stepUntil(d, 10, replaced))
	require.True(t, replaced(), "events: %v", rec.kinds())
	ev := rec.of("replace")[0]
	assert.Equal(t, projection.NodeID("unit1"), ev.Node)
	assert.Empty(t, ev.Fresh, "no live spare: the unit leaves its chain")
	for range 5 {
		d.Step(e.ctx)
	}
	assert.Empty(t, rec.of("grow"), "the blank spare is never used: events %v", rec.kinds())
	p := e.latestCommitted()
	assert.NotContains(t, p.Units(), projection.NodeID("spare0"))
	assert.Equal(t, projection.Chain{"unit0"}, p.Segments[len(p.Segments)-1].Stripes[0])
	for a, s := range e.appendAll(2, "after") {
		want[a] = s
	}
	e.readsBack(want)
}

// TestDetectorMinReplicas: with no spare, a crashed unit leaves its chain
// if that keeps MinReplicas others; with MinReplicas 2, a chain of 2 keeps
// it (appends to that chain wait for it).
func TestDetectorMinReplicas(t *testing.T) {
	for _, min := range []int{1, 2} {
		t.Run(fmt.Sprintf("MinReplicas %d", min), func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
			e.appendAll(2, "before")
			e.crashUnit("unit0")
			d, rec := e.detector(nil, func(cfg *corfu.DetectorConfig) { cfg.MinReplicas = min })
			for range 6 {
				d.Step(e.ctx)
			}
			require.Len(t, rec.of("suspect"), 1, "events: %v", rec.kinds())
			p := e.latestCommitted()
			if min == 2 {
				assert.Empty(t, rec.of("replace"), "events: %v", rec.kinds())
				assert.Equal(t, storage.Epoch(0), p.Epoch)
				return
			}
			require.Len(t, rec.of("replace"), 1, "events: %v", rec.kinds())
			assert.Equal(t, projection.Chain{"unit1"}, p.Segments[len(p.Segments)-1].Stripes[0])
			_, err := e.c.Append(e.ctx, []byte("after"))
			require.NoError(t, err)
		})
	}
}

// TestDetectorEventsReportFailure: a reconfiguration the detector starts
// and cannot finish shows as an event with its error, and commits nothing.
// The detector reaches the layout servers to read, but its proposals are
// refused.
func TestDetectorEventsReportFailure(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
	e.appendAll(2, "before")
	dnet := &faultNet{next: e.cl.Net}
	d, rec := e.detector(dnet, nil)
	dnet.setRule(func(to transport.NodeID, req *transport.Request) action {
		if strings.HasPrefix(string(to), "layout") && req.Op != transport.OpGetLayout {
			return refuse
		}
		return pass
	})
	e.crashUnit("unit3")
	for range corfu.DefaultProbeMisses {
		assert.False(t, d.Step(e.ctx))
	}
	evs := rec.of("replace")
	require.Len(t, evs, 1, "events: %v", rec.kinds())
	require.Error(t, evs[0].Err)
	assert.Zero(t, evs[0].Epoch)
	require.ErrorIs(t, evs[0].Err, corfu.ErrNoQuorum)
	assert.Equal(t, storage.Epoch(0), e.latestCommitted().Epoch)

	// With the layout servers back, the next round replaces the unit, on
	// top of the seal the failed attempt left behind.
	dnet.setRule(nil)
	require.True(t, d.Step(e.ctx), "events: %v", rec.kinds())
	evs = rec.of("replace")
	require.Len(t, evs, 2)
	require.NoError(t, evs[1].Err)
	p := e.latestCommitted()
	assert.Equal(t, evs[1].Epoch, p.Epoch)
	assert.NotContains(t, p.Units(), projection.NodeID("unit3"))
	assert.Equal(t, projection.Chain{"unit2", "spare0"}, p.Segments[len(p.Segments)-1].Stripes[1])
	want := e.appendAll(4, "after")
	e.readsBack(want)
}

// TestDetectorReusedUnitKeepsEntries: the detector replaces unit0 (stripe
// 0), which comes back and is a spare again; it then replaces unit3
// (stripe 1) with unit0 and rebuilds stripe 1 of the closed segment onto
// it. unit0 still holds stripe 0's content at the segment's local
// addresses, all of it trimmed: the rebuild refuses it
// (ErrRebuildConflict) rather than let its trims stand for stripe 1's
// entries. Once unit2 goes too, those entries are unreachable, and no read
// may say they were trimmed.
func TestDetectorReusedUnitKeepsEntries(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
	want := map[storage.Address]string{}
	for i := range 6 {
		a, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("entry %d", i)))
		require.NoError(t, err)
		if a%2 == 0 {
			require.NoError(t, e.c.Trim(e.ctx, a)) // stripe 0
		} else {
			want[a] = fmt.Sprintf("entry %d", i)
		}
	}
	d, rec := e.detector(nil, nil)
	unit0 := handlerOf(t, e.cl, "unit0")
	e.crashUnit("unit0")
	for range 2 * corfu.DefaultProbeMisses {
		d.Step(e.ctx)
	}
	require.Equal(t, []string{"suspect unit0>", "replace unit0>spare0", "rebuild >"}, rec.kinds())
	e.cl.Net.Register("unit0", unit0) // back, a spare now
	e.crashUnit("unit3")
	for range 2 * corfu.DefaultProbeMisses {
		d.Step(e.ctx)
	}
	require.Equal(t, "replace unit3>unit0", rec.kinds()[4], "events: %v", rec.kinds())
	// NB: unit0 holds stripe 0's trims at the local addresses stripe 1's
	// entries would take: the rebuild refuses it (and is not tried again).
	var refused bool
	for _, ev := range rec.of("rebuild") {
		refused = refused || errors.Is(ev.Err, corfu.ErrRebuildConflict)
	}
	require.True(t, refused, "events: %v", rec.kinds())
	e.readsBack(want)

	// With unit2, stripe 1's closed segment loses its last replica: its
	// entries are unreachable, never trimmed.
	e.crashUnit("unit2")
	for range 2 * corfu.DefaultProbeMisses {
		d.Step(e.ctx)
	}
	require.NotEmpty(t, rec.of("suspect"))
	for a := range want {
		_, err := e.open(nil).Read(e.ctx, a)
		require.Error(t, err)
		require.NotErrorIs(t, err, corfu.ErrTrimmed, "address %d: an acknowledged entry, never trimmed; events: %v", a, rec.kinds())
	}
}

// TestDetectorConfirm: two detectors that confirm each other (Confirm 2).
// One loses its own links to unit0, which the other still reaches: it
// suspects unit0 but does not replace it, as a lone detector (Confirm 1)
// does. Once unit0 crashes for all, both suspect it and it is replaced.
// Once the other detector stops reporting, the first acts on its own.
func TestDetectorConfirm(t *testing.T) {
	cutUnit0 := func(to transport.NodeID, _ *transport.Request) action {
		if to == "unit0" {
			return refuse
		}
		return pass
	}
	t.Run("lone detector replaces", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
		anet := &faultNet{next: e.cl.Net}
		a, rec := e.detector(anet, nil)
		anet.setRule(cutUnit0)
		replaced := func() bool { return len(rec.of("replace")) > 0 }
		assert.LessOrEqual(t, e.stepUntil(a, 10, replaced), corfu.DefaultProbeMisses, "events: %v", rec.kinds())
	})
	t.Run("peer disagrees, then agrees", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
		want := e.appendAll(4, "before")
		confirm := func(cfg *corfu.DetectorConfig) { cfg.Confirm = 2 }
		anet := &faultNet{next: e.cl.Net}
		a, arec := e.detector(anet, confirm)
		b, brec := e.detector(nil, confirm)
		anet.setRule(cutUnit0)
		for range 10 {
			assert.False(t, a.Step(e.ctx))
			assert.False(t, b.Step(e.ctx))
		}
		assert.NotEmpty(t, arec.of("suspect"), "events: %v", arec.kinds())
		assert.Empty(t, arec.of("replace"), "events: %v", arec.kinds())
		assert.Empty(t, brec.of("suspect"), "events: %v", brec.kinds())
		assert.Equal(t, storage.Epoch(0), e.latestCommitted().Epoch, "no reconfiguration")

		e.crashUnit("unit0")
		replaced := func() bool { return len(arec.of("replace"))+len(brec.of("replace")) > 0 }
		rounds := 0
		for ; rounds < 10 && !replaced(); rounds++ {
			a.Step(e.ctx)
			if !replaced() {
				b.Step(e.ctx)
			}
		}
		require.True(t, replaced(), "events: %v / %v", arec.kinds(), brec.kinds())
		assert.LessOrEqual(t, rounds, corfu.DefaultProbeMisses+1)
		assert.NotContains(t, e.latestCommitted().Units(), projection.NodeID("unit0"))
		for a, s := range e.appendAll(2, "after") {
			want[a] = s
		}
		e.readsBack(want)
	})
	t.Run("peer restarted", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
		named := func(name string) func(*corfu.DetectorConfig) {
			return func(cfg *corfu.DetectorConfig) { cfg.Confirm, cfg.Name = 2, name }
		}
		anet := &faultNet{next: e.cl.Net}
		a, rec := e.detector(anet, named("a"))
		b, _ := e.detector(nil, named("b"))
		for range 5 {
			a.Step(e.ctx)
			b.Step(e.ctx)
		}
		// NB: b restarts: a new detector of that name, whose rounds
		// start again from one, and which still reaches unit0.
		b, _ = e.detector(nil, named("b"))
		anet.setRule(cutUnit0)
		for range 10 {
			assert.False(t, a.Step(e.ctx))
			assert.False(t, b.Step(e.ctx))
		}
		assert.NotEmpty(t, rec.of("suspect"), "events: %v", rec.kinds())
		assert.Empty(t, rec.of("replace"), "the restarted peer still counts: events: %v", rec.kinds())
	})
	t.Run("peer gone", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1}, nil)
		confirm := func(cfg *corfu.DetectorConfig) { cfg.Confirm = 2 }
		a, rec := e.detector(nil, confirm)
		b, _ := e.detector(nil, confirm)
		a.Step(e.ctx)
		b.Step(e.ctx) // b reported once, then stops
		e.crashUnit("unit0")
		replaced := func() bool { return len(rec.of("replace")) > 0 }
		// NB: b's report counts until a's round is Misses past it; a
		// suspects unit0 after Misses rounds, and b does not agree.
		rounds := e.stepUntil(a, 20, replaced)
		require.True(t, replaced(), "events: %v", rec.kinds())
		assert.Greater(t, rounds, corfu.DefaultProbeMisses, "it waited for b at first")
		assert.LessOrEqual(t, rounds, 2*corfu.DefaultProbeMisses+1)
	})
}
