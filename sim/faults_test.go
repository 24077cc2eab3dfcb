package sim_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// arrival is a request as a recorder saw it.
type arrival struct {
	tag string
	at  time.Duration
}

// recorder is a Handler that answers every request and records its tag
// (the request's data) and arrival time.
type recorder struct {
	s   *sim.Scheduler
	got []arrival
}

func (r *recorder) Handle(req *transport.Request) *transport.Response {
	r.got = append(r.got, arrival{tag: string(req.Data), at: r.s.Elapsed()})
	return &transport.Response{}
}

func (r *recorder) tags() []string {
	var out []string
	for _, a := range r.got {
		out = append(out, a.tag)
	}
	return out
}

// world is a small network of recorders with a Faults policy over a
// constant 1ms latency.
type world struct {
	s     *sim.Scheduler
	n     *sim.Network
	f     *sim.Faults
	nodes map[transport.NodeID]*recorder
	// answered[tag] says whether the call tagged tag got its response;
	// returned[tag] is when the call returned.
	answered map[string]bool
	returned map[string]time.Duration
}

func newWorld(nodes ...transport.NodeID) *world {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	f := sim.NewFaults(s, n.Policy())
	n.SetPolicy(f)
	w := &world{s: s, n: n, f: f, nodes: map[transport.NodeID]*recorder{},
		answered: map[string]bool{}, returned: map[string]time.Duration{}}
	for _, id := range nodes {
		r := &recorder{s: s}
		w.nodes[id] = r
		n.AddNode(id, r)
	}
	return w
}

// call sends a request tagged tag from from to to at virtual time at, and
// waits up to timeout (100ms if zero) for the response.
func (w *world) call(at time.Duration, from, to transport.NodeID, tag string, timeout ...time.Duration) {
	d := 100 * time.Millisecond
	if len(timeout) > 0 {
		d = timeout[0]
	}
	w.s.AfterFunc(at, func() {
		ctx, cancel := w.s.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := w.n.Caller(from).Call(ctx, to, writeReq(0, tag))
		w.answered[tag] = err == nil
		w.returned[tag] = w.s.Elapsed()
	})
}

func (w *world) run(t *testing.T) {
	t.Helper()
	require.NoError(t, w.s.Run())
	w.s.Close()
}

// got reports whether node received the request tagged tag.
func (w *world) got(node transport.NodeID, tag string) bool {
	return slices.Contains(w.nodes[node].tags(), tag)
}

func TestFaultPartitionCutsExactlyTheLinksBetweenGroups(t *testing.T) {
	w := newWorld("a", "b", "c")
	w.f.Partition(ms(10), ms(50), "test", []transport.NodeID{"x", "a"}, []transport.NodeID{"y", "b"})
	for _, at := range []int{0, 20, 60} {
		tag := func(s string) string { return s + "@" + time.Duration(ms(at)).String() }
		w.call(ms(at), "x", "a", tag("x-a"))
		w.call(ms(at), "x", "b", tag("x-b"))
		w.call(ms(at), "y", "a", tag("y-a"))
		w.call(ms(at), "y", "b", tag("y-b"))
		w.call(ms(at), "x", "c", tag("x-c")) // c is in no group
	}
	w.run(t)
	for _, tag := range []string{"x-a@20ms", "y-b@20ms", "x-c@20ms"} {
		assert.True(t, w.answered[tag], "%s: a link inside a group or to an ungrouped node works", tag)
	}
	for _, tag := range []string{"x-b@20ms", "y-a@20ms"} {
		assert.False(t, w.answered[tag], "%s: a cut link", tag)
	}
	assert.False(t, w.got("b", "x-b@20ms"), "the request itself is lost")
	for _, tag := range []string{"x-a@0s", "x-b@0s", "y-a@0s", "y-b@0s", "x-b@60ms", "y-a@60ms"} {
		assert.True(t, w.answered[tag], "%s: outside the window every link works", tag)
	}
	assert.Equal(t, []sim.FaultRecord{{Kind: sim.FaultPartition, Target: "x,a|y,b", Start: ms(10), End: ms(50), Detail: "test"}},
		w.f.Records())
}

func TestFaultAsymmetricDropsOneDirection(t *testing.T) {
	w := newWorld("a", "b")
	w.f.Asymmetric(0, ms(50), "a", true) // a can send but not receive
	w.f.Asymmetric(0, ms(50), "b", false)
	w.call(ms(1), "x", "a", "to-a")
	w.call(ms(1), "a", "c", "from-a") // c does not exist; only the drop counts
	w.call(ms(1), "x", "b", "to-b")
	w.run(t)
	assert.False(t, w.got("a", "to-a"), "inbound to a is lost")
	assert.True(t, w.got("b", "to-b"), "inbound to b arrives")
	assert.False(t, w.answered["to-b"], "but b's answer is lost")
	st := w.n.Stats()
	assert.Equal(t, uint64(2), st.Dropped, "the request to a and b's response")
	assert.Equal(t, uint64(1), st.Undeliverable, "a's own request left it")
}

func TestFaultBridgeIsNotTransitive(t *testing.T) {
	w := newWorld("a", "b", "c")
	w.f.Bridge(0, ms(50), []transport.NodeID{"a"}, "b", []transport.NodeID{"c"})
	w.call(ms(1), "a", "b", "a-b")
	w.call(ms(1), "b", "c", "b-c")
	w.call(ms(1), "c", "b", "c-b")
	w.call(ms(1), "a", "c", "a-c")
	w.call(ms(1), "c", "a", "c-a")
	w.run(t)
	assert.True(t, w.answered["a-b"])
	assert.True(t, w.answered["b-c"])
	assert.True(t, w.answered["c-b"])
	assert.False(t, w.got("c", "a-c"), "A does not reach C")
	assert.False(t, w.got("a", "c-a"), "C does not reach A")
}

func TestFaultFlapTogglesTheLink(t *testing.T) {
	w := newWorld("a", "b")
	w.f.Flap(ms(100), ms(400), "x", "a", ms(50)) // down [100,150), up [150,200), down [200,250)...
	for _, at := range []int{90, 110, 160, 210, 260, 410} {
		w.call(ms(at), "x", "a", time.Duration(ms(at)).String(), ms(20))
		w.call(ms(at), "x", "b", "b"+time.Duration(ms(at)).String(), ms(20))
	}
	w.run(t)
	for at, up := range map[string]bool{"90ms": true, "110ms": false, "160ms": true, "210ms": false, "260ms": true, "410ms": true} {
		assert.Equal(t, up, w.answered[at], "x<->a at %s", at)
		assert.True(t, w.answered["b"+at], "other links never flap")
	}
}

func TestFaultBlackoutAndOutage(t *testing.T) {
	w := newWorld("a", "b")
	w.f.Blackout(0, ms(50), "a")
	w.f.Outage(ms(100), ms(150))
	w.call(ms(1), "x", "a", "to-a")
	w.call(ms(1), "a", "b", "from-a")
	w.call(ms(1), "x", "b", "x-b")
	w.call(ms(110), "x", "b", "x-b-outage")
	w.call(ms(160), "x", "a", "after")
	w.run(t)
	assert.False(t, w.got("a", "to-a"))
	assert.False(t, w.got("b", "from-a"))
	assert.True(t, w.answered["x-b"], "the rest of the network works in a blackout")
	assert.False(t, w.got("b", "x-b-outage"), "an outage loses everything")
	assert.True(t, w.answered["after"])
}

func TestFaultDropProbability(t *testing.T) {
	w := newWorld("a")
	w.f.Drop(0, time.Hour, 0.3)
	for i := range 400 {
		w.call(ms(i), "x", "a", time.Duration(ms(i)).String())
	}
	w.run(t)
	st := w.n.Stats()
	// Each call sends up to two messages, each lost with p = 0.3.
	ratio := float64(st.Dropped) / float64(st.Sent)
	assert.InDelta(t, 0.3, ratio, 0.05, "dropped %d of %d", st.Dropped, st.Sent)
}

func TestFaultDuplicatesArriveLate(t *testing.T) {
	w := newWorld("a")
	w.f.Duplicate(0, ms(50), 1, ms(30))
	w.call(ms(1), "x", "a", "dup")
	w.call(ms(60), "x", "a", "after")
	w.run(t)
	var at []time.Duration
	for _, a := range w.nodes["a"].got {
		if a.tag == "dup" {
			at = append(at, a.at)
		}
	}
	require.Len(t, at, 2, "the request and its copy")
	assert.Equal(t, ms(2), at[0], "the original on time")
	assert.GreaterOrEqual(t, at[1], at[0], "the copy trails it")
	assert.LessOrEqual(t, at[1], at[0]+ms(30))
	assert.Equal(t, 1, slices.Index(w.nodes["a"].tags(), "dup")+1, "the original first")
	assert.Equal(t, 1, len(slices.DeleteFunc(w.nodes["a"].tags(), func(s string) bool { return s != "after" })),
		"no copies after the window")
	assert.Positive(t, w.n.Stats().LateReplies, "a copy's response finds the call done")
}

func TestFaultReorderSwapsTwoMessagesInFlight(t *testing.T) {
	// A constant latency keeps order; a swap needs a message in flight.
	w := newWorld("a")
	w.f.Reorder(ms(5), ms(50), 1)
	w.call(ms(0), "x", "a", "first")   // sent before the window: never swapped
	w.call(ms(10), "x", "a", "second") // in the window, nothing earlier in flight
	w.run(t)
	assert.Equal(t, []string{"first", "second"}, w.nodes["a"].tags())
	assert.Zero(t, w.n.Stats().Swapped, "nothing in flight to swap with")

	// With two requests in flight on one link, the later one is swapped
	// ahead of the earlier.
	w = newWorld("a")
	w.n.SetPolicy(sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		d := sim.Decision{Delay: 10 * time.Millisecond}
		if req, err := transport.DecodeRequest(m.Data); err == nil && !m.Reply && string(req.Data) == "later" {
			d.Swap = true
		}
		return d
	}))
	w.call(ms(0), "x", "a", "early")
	w.call(ms(2), "x", "a", "later")
	w.run(t)
	assert.Equal(t, []string{"later", "early"}, w.nodes["a"].tags())
	assert.Equal(t, []time.Duration{ms(10), ms(12)}, []time.Duration{w.nodes["a"].got[0].at, w.nodes["a"].got[1].at},
		"they trade arrival times")
	assert.Equal(t, uint64(1), w.n.Stats().Swapped)
}

func TestFaultReorderPolicySetsSwap(t *testing.T) {
	w := newWorld("a")
	w.f.Reorder(0, ms(50), 1)
	var swaps int
	inner := w.f
	w.n.SetPolicy(sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		d := inner.Route(now, r, m)
		if d.Swap {
			swaps++
		}
		return d
	}))
	w.call(ms(1), "x", "a", "one")
	w.call(ms(60), "x", "a", "two")
	w.run(t)
	assert.Equal(t, 2, swaps, "the request and its response in the window; none after")
}

func TestFaultClogDeliversLateAndOneWay(t *testing.T) {
	w := newWorld("a", "x")
	w.f.Clog(ms(10), ms(80), "y", "a")
	w.call(ms(20), "y", "a", "clogged", time.Second)
	w.call(ms(20), "a", "x", "reverse", time.Second)
	w.call(ms(90), "y", "a", "after", time.Second)
	w.run(t)
	got := w.nodes["a"].got
	require.Len(t, got, 2)
	assert.Equal(t, arrival{"clogged", ms(81)}, got[0], "held until the clog ends, then its 1ms")
	assert.Equal(t, ms(22), w.returned["reverse"], "a->x is not clogged")
	assert.Equal(t, ms(92), w.returned["after"])
}

func TestFaultSwizzleClogsOneByOneAndUnclogsInRandomOrder(t *testing.T) {
	w := newWorld()
	nodes := []transport.NodeID{"n1", "n2", "n3", "n4"}
	w.f.Swizzle(ms(100), ms(500), nodes)
	recs := w.f.Records()
	require.Len(t, recs, 4)
	var ends []time.Duration
	for i, r := range recs {
		assert.Equal(t, sim.FaultSwizzle, r.Kind)
		assert.Equal(t, string(nodes[i]), r.Target, "clogged in order")
		assert.Equal(t, ms(100)+ms(100)*time.Duration(i)/4, r.Start, "over the first quarter")
		ends = append(ends, r.End)
	}
	slices.Sort(ends)
	assert.Equal(t, ms(500), ends[3], "the last unclogs at the end")
	assert.Greater(t, ends[0], ms(300)-time.Millisecond, "unclogs in the second half")
	for i := 1; i < 4; i++ {
		assert.Less(t, ends[i-1], ends[i], "one by one")
	}
}

func TestFaultPauseHoldsThenDelivers(t *testing.T) {
	w := newWorld("a", "b")
	w.f.Pause(ms(10), ms(60), "a")
	w.f.Pause(ms(10), ms(60), "y") // a paused client
	w.call(ms(20), "x", "a", "to-paused", time.Second)
	w.call(ms(25), "x", "a", "to-paused-2", time.Second)
	w.call(ms(20), "y", "b", "from-paused", time.Second)
	w.run(t)
	assert.Equal(t, []arrival{{"to-paused", ms(60)}, {"to-paused-2", ms(60)}}, w.nodes["a"].got,
		"held until the pause ends, then delivered in order of arrival")
	assert.Equal(t, ms(61), w.returned["to-paused"])
	assert.Equal(t, []arrival{{"from-paused", ms(61)}}, w.nodes["b"].got, "a paused client's request leaves when it resumes")
	assert.Equal(t, ms(62), w.returned["from-paused"])
	assert.Positive(t, w.n.Stats().Held)
}

func TestFaultCrashLosesInFlightMessages(t *testing.T) {
	w := newWorld("a")
	var crashed, restarted []transport.NodeID
	w.f.OnCrash = func(n transport.NodeID) { crashed = append(crashed, n) }
	w.f.OnRestart = func(n transport.NodeID) { restarted = append(restarted, n) }
	// Messages take 10ms; a crashes at 15ms and restarts at 30ms.
	w.f.Latency(0, time.Hour, sim.Constant(10*time.Millisecond), "constant:10ms")
	w.f.Crash(ms(15), ms(30), "a")
	w.call(ms(0), "x", "a", "answered-before") // served at 10ms, answer in flight at 15ms
	w.call(ms(10), "x", "a", "in-flight")      // in flight at 15ms
	w.call(ms(20), "x", "a", "while-down")     // sent while a is down: refused
	w.call(ms(35), "x", "a", "after")          // after the restart
	w.run(t)
	assert.Equal(t, []string{"answered-before", "after"}, w.nodes["a"].tags())
	assert.False(t, w.answered["answered-before"], "its response was in flight when a crashed")
	assert.False(t, w.answered["in-flight"])
	assert.False(t, w.answered["while-down"])
	assert.True(t, w.answered["after"])
	assert.Equal(t, []transport.NodeID{"a"}, crashed)
	assert.Equal(t, []transport.NodeID{"a"}, restarted)
	assert.Equal(t, uint64(2), w.n.Stats().Lost, "lost on arrival: the answer and the request in flight")
	assert.Equal(t, uint64(1), w.n.Stats().Dropped, "refused at sending")
}

func TestFaultLatencyAndClock(t *testing.T) {
	w := newWorld("a")
	w.f.Latency(ms(10), ms(20), sim.Constant(7*time.Millisecond), "constant:7ms")
	w.f.Clock(ms(10), ms(20), "client1", -3*time.Second)
	var offsets []time.Duration
	for _, at := range []int{5, 15, 25} {
		w.s.Schedule(ms(at), "probe", func() { offsets = append(offsets, w.f.ClockOffset("client1")) })
	}
	w.call(ms(0), "x", "a", "healthy")
	w.call(ms(12), "x", "a", "slow")
	w.run(t)
	assert.Equal(t, ms(2), w.returned["healthy"])
	assert.Equal(t, ms(26), w.returned["slow"], "7ms each way")
	assert.Equal(t, []time.Duration{0, -3 * time.Second, 0}, offsets)
	assert.Equal(t, map[sim.FaultKind]int{sim.FaultLatency: 1, sim.FaultClock: 1}, w.f.Counts())
}

func TestFaultPlanIsDeterministicAndWithinLimits(t *testing.T) {
	topo := sim.Topology{
		Layouts:   []transport.NodeID{"layout0", "layout1", "layout2"},
		Sequencer: "seq",
		Units:     []transport.NodeID{"unit0", "unit1", "unit2", "unit3"},
		Clients:   []transport.NodeID{"client1", "client2"},
		Replicas:  2,
	}
	cfg := sim.FaultConfig{Duration: 5 * time.Second, Latency: "bimodal", Drop: 0.1, Duplicate: 0.2, Reorder: 0.1,
		Clogs: 3, Swizzles: 2, Partitions: 3, Asymmetric: 2, Bridges: 2, Flaps: 2, Blackouts: 1, Outages: 2,
		Pauses: 3, Crashes: 3, Clocks: 2, Reformats: 3, Amnesias: 3,
		SlowDisks: 2, Corrupts: 2, Misdirects: 2, Torn: 2, FullDisks: 2, Swaps: 2}
	misdirectCfg := cfg
	misdirectCfg.Reformats = 0 // the reformats take the whole budget (f = 1) otherwise
	planWith := func(cfg sim.FaultConfig, seed uint64) []sim.FaultRecord {
		s := sim.NewScheduler(seed)
		defer s.Close()
		f := sim.NewFaults(s, sim.LatencyPolicy{Model: sim.Constant(time.Millisecond)})
		require.NoError(t, f.Plan(cfg, topo))
		return f.Records()
	}
	plan := func(seed uint64) []sim.FaultRecord { return planWith(cfg, seed) }
	a := append(plan(9), planWith(misdirectCfg, 9)...)
	assert.Equal(t, a, append(plan(9), planWith(misdirectCfg, 9)...), "a seed plans the same faults")
	assert.NotEqual(t, a, plan(10))
	kinds := map[sim.FaultKind]bool{}
	for seed := uint64(10); seed < 20; seed++ {
		for _, r := range planWith(misdirectCfg, seed) {
			kinds[r.Kind] = true // node faults that did not fit seed 9's plan
		}
	}
	for _, r := range a {
		kinds[r.Kind] = true
		assert.GreaterOrEqual(t, r.Start, time.Duration(0), "%v", r)
		assert.LessOrEqual(t, r.End, cfg.Duration, "%v: every fault heals by the end of the phase", r)
	}
	for _, k := range append(sim.FaultKinds(), sim.DiskFaultKinds()...) {
		if k != sim.FaultReconfig {
			assert.True(t, kinds[k], "%s planned", k)
		}
	}
	// At most f = 1 unit and a minority (1) of layout servers down at once;
	// one node fault per node at a time.
	// At most f = 1 reformat or misdirect over the whole run, of a unit.
	// The disk faults that take a node out of service (torn, diskfull,
	// swap) count as node faults.
	for seed := uint64(1); seed <= 100; seed++ {
		var node []sim.FaultRecord
		damaging := 0
		c := cfg
		if seed%2 == 0 {
			c = misdirectCfg
		}
		for _, r := range planWith(c, seed) {
			switch r.Kind {
			case sim.FaultReformat, sim.FaultMisdirect:
				damaging++
				assert.True(t, hasPrefix(r.Target, "unit"), "seed %d: %v", seed, r)
				node = append(node, r)
			case sim.FaultCorrupt, sim.FaultTorn, sim.FaultSwap:
				assert.True(t, hasPrefix(r.Target, "unit"), "seed %d: %v", seed, r)
				if r.Kind != sim.FaultCorrupt {
					node = append(node, r)
				}
			case sim.FaultPause, sim.FaultCrash, sim.FaultBlackout, sim.FaultDiskFull:
				node = append(node, r)
			}
		}
		assert.LessOrEqual(t, damaging, 1, "seed %d", seed)
		for i, x := range node {
			for _, y := range node[i+1:] {
				if x.End <= y.Start || y.End <= x.Start {
					continue
				}
				assert.NotEqual(t, x.Target, y.Target, "seed %d: %v and %v", seed, x, y)
				both := func(prefix string) bool { return hasPrefix(x.Target, prefix) && hasPrefix(y.Target, prefix) }
				assert.False(t, both("unit"), "seed %d: two units down at once: %v and %v", seed, x, y)
				assert.False(t, both("layout"), "seed %d: two layout servers down at once: %v and %v", seed, x, y)
			}
		}
	}
	// Chains of one replica: no reformat at all.
	single := topo
	single.Replicas = 1
	for seed := uint64(1); seed <= 20; seed++ {
		s := sim.NewScheduler(seed)
		f := sim.NewFaults(s, sim.LatencyPolicy{Model: sim.Constant(time.Millisecond)})
		require.NoError(t, f.Plan(sim.FaultConfig{Duration: 5 * time.Second, Reformats: 3}, single))
		assert.Zero(t, f.Counts()[sim.FaultReformat], "seed %d", seed)
		s.Close()
	}
	s := sim.NewScheduler(1)
	defer s.Close()
	err := sim.NewFaults(s, nil).Plan(sim.FaultConfig{Duration: time.Second, Latency: "nonsense"}, topo)
	assert.ErrorIs(t, err, sim.ErrBadLatency)
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// TestClusterCrash checks what a crash keeps: a sequencer loses its state
// (a fresh one, not ready), a unit keeps its storage (MemoryDisk), and a
// layout server keeps its acceptor.
func TestClusterCrash(t *testing.T) {
	s := sim.NewScheduler(1)
	defer s.Close()
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	cl, err := sim.NewCluster(s, n, sim.ClusterConfig{})
	require.NoError(t, err)
	old := cl.Sequencer
	require.NoError(t, cl.Crash("seq"))
	require.NoError(t, cl.Restart("seq"))
	assert.NotSame(t, old, cl.Sequencer)
	assert.False(t, cl.Sequencer.Ready(), "a restarted sequencer must be recovered")
	_, err = cl.Sequencer.Next(0, 1, nil)
	assert.ErrorIs(t, err, sequencer.ErrNotReady)

	u := cl.Units[0] // unit0
	require.NoError(t, u.Write(context.Background(), 0, 3, []byte("kept")))
	require.NoError(t, cl.Crash("unit0"))
	require.NoError(t, cl.Restart("unit0"))
	got, err := u.Read(context.Background(), 0, 3)
	require.NoError(t, err)
	assert.Equal(t, "kept", string(got))

	// A reformat brings the unit back blank.
	require.NoError(t, cl.Crash("unit0"))
	require.NoError(t, cl.RestartFrom("unit0", sim.FaultReformat))
	u0 := cl.ServingUnit("unit0").(*storage.Memory)
	assert.True(t, u0.Blank())
	_, err = u0.Read(context.Background(), 0, 3)
	assert.ErrorIs(t, err, storage.ErrBlank)

	assert.Error(t, cl.Crash("nobody"))
	assert.Error(t, cl.Restart("unit1"), "unit1 never crashed")
	_, err = sim.MemoryDisk{}.Restart("unit0", sim.FaultKind("power"), u)
	assert.ErrorIs(t, err, sim.ErrUnsupportedFault)
}

// TestClusterClockSkew checks that a client's Env reads its node's clock
// offset, and only Now is off.
func TestClusterClockSkew(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	cl, err := sim.NewCluster(s, n, sim.ClusterConfig{})
	require.NoError(t, err)
	cl.Clock = func(node transport.NodeID) time.Duration {
		if node == "skewed" {
			return time.Hour
		}
		return 0
	}
	s.Go("client", func() {
		ctx := context.Background()
		c, err := cl.ClientAs(ctx, "skewed", corfu.Config{})
		require.NoError(t, err)
		_, err = c.Append(ctx, []byte("x"))
		assert.NoError(t, err, "a skewed clock does not stop a client")
	})
	require.NoError(t, s.Run())
	s.Close()
}

// TestMonitorSequencerLost checks that, after the sequencer lost its state,
// handing out again an address nobody wrote is not a violation, and one a
// replica holds still is.
func TestMonitorSequencerLost(t *testing.T) {
	m := sim.NewMonitor()
	m.Tokens(0, 0, 4)
	m.Stored(1, "unit0", 0, []byte("v"))
	m.SequencerLost()
	m.Tokens(1, 2, 2) // 2 and 3: handed out, never written
	assert.Zero(t, m.Count())
	m.Tokens(1, 1, 1) // 1 holds data
	require.Equal(t, 1, m.Count())
	assert.Equal(t, "S10", m.Violations()[0].Invariant)
	m.Tokens(1, 2, 1) // handed out twice since the loss
	assert.Equal(t, 2, m.Count())
}

// TestMonitorSequencerLostNewEpochFill: after the sequencer lost its state,
// a reader fills a hole it saw handed out before the loss, in the new
// epoch, before the new sequencer hands the address out again: that races
// the new holder at the chain's head (write-once settles it), and is not a
// reissue. Junk filled in the old epoch, which the seal could have found,
// still is.
func TestMonitorSequencerLostNewEpochFill(t *testing.T) {
	m := sim.NewMonitor()
	m.Tokens(0, 0, 4)
	m.SequencerLost()
	m.Filled(2, "unit0", 1)
	m.Tokens(1, 2, 1)
	assert.Zero(t, m.Count(), "a fill of the new epoch: %v", m.Violations())

	m = sim.NewMonitor()
	m.Tokens(0, 0, 4)
	m.Filled(2, "unit0", 0)
	m.SequencerLost()
	m.Tokens(1, 2, 1)
	require.Equal(t, 1, m.Count())
	assert.Equal(t, "S10", m.Violations()[0].Invariant)
}

// TestMonitorSequencerLostOtherChain: after the sequencer lost its state,
// junk that a losing reconfiguration filled through the old layout, on
// replicas that the new epoch's projection does not place the address on,
// is where no reader looks, and handing the address out again is no
// reissue; the same junk on the address's chain in the new epoch is.
func TestMonitorSequencerLostOtherChain(t *testing.T) {
	for _, tt := range []struct {
		name   string
		filled projection.NodeID
		want   int
	}{
		{"on another chain", "unit2", 0},
		{"on the new chain", "unit1", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := sim.NewMonitor()
			m.ChainOf = func(global storage.Address, epoch storage.Epoch) []projection.NodeID {
				if epoch >= 2 {
					return []projection.NodeID{"unit0", "unit1"}
				}
				return []projection.NodeID{"unit2", "unit3"}
			}
			m.Tokens(0, 0, 14)
			m.SequencerLost()
			m.Filled(13, tt.filled, 1)
			m.Tokens(2, 13, 1)
			require.Equal(t, tt.want, m.Count(), "%v", m.Violations())
		})
	}
}

// TestMonitorLost: a replica whose record a disk fault destroyed (Lost)
// may store something else there; a junk fill of it while another replica
// still holds the data breaks S1 and S6 all the same.
func TestMonitorLost(t *testing.T) {
	m := sim.NewMonitor()
	m.Stored(1, "unit3", 0, []byte("head only"))
	m.Filled(1, "unit3", 2)
	assert.Equal(t, 2, m.Count(), "without Lost, junk over data: %v", m.Violations())

	m = sim.NewMonitor()
	m.Stored(1, "unit3", 0, []byte("head only"))
	m.Lost(1, "unit3")
	m.Filled(1, "unit3", 2)
	m.Filled(1, "unit4", 2)
	assert.Zero(t, m.Count(), "%v", m.Violations())

	m = sim.NewMonitor()
	m.Stored(1, "unit3", 0, []byte("committed"))
	m.Stored(1, "unit4", 0, []byte("committed"))
	m.Lost(1, "unit3")
	m.Filled(1, "unit3", 2)
	require.NotZero(t, m.Count())
	assert.Equal(t, "S1", m.Violations()[0].Invariant, "%v", m.Violations())
}

// TestMonitorInChain checks that data left only on a replica taken out of
// the chain does not conflict with a later junk fill, while two values
// always conflict.
func TestMonitorInChain(t *testing.T) {
	chain := map[transport.NodeID]bool{"unit1": true}
	m := sim.NewMonitor()
	m.InChain = func(_ storage.Address, n projection.NodeID) bool { return chain[n] }
	m.Stored(2, "unit0", 0, []byte("partial")) // the head, since replaced
	m.Filled(2, "unit1", 0)
	assert.Zero(t, m.Count(), "the head's data was never committed")
	m.Stored(2, "unit1", 0, []byte("other"))
	assert.Equal(t, 1, m.Count(), "data over junk on the chain, and over another value")

	m = sim.NewMonitor()
	m.InChain = func(_ storage.Address, n projection.NodeID) bool { return chain[n] }
	m.Stored(5, "unit0", 0, []byte("v"))
	m.Stored(5, "unit1", 0, []byte("v")) // the same value, also on a live replica
	m.Filled(5, "unit1", 0)
	assert.Equal(t, 2, m.Count(), "S1 and S6: junk over data that a live replica holds")
}
