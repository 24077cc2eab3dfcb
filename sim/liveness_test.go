package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
)

// bounds are the liveness bounds of the test histories: healed at 100ms,
// 50ms for an append or a read, three epoch changes, 200ms for any op, and
// client 9 as the final pass.
func bounds() sim.LivenessBounds {
	return sim.LivenessBounds{
		Heal:            ms(100),
		AppendBound:     ms(50),
		FillBound:       ms(50),
		MaxEpochChanges: 3,
		OpBound:         ms(200),
		FinalClient:     9,
	}
}

// healthy is a history that passes every liveness rule: faults before the
// heal may fail anything; after it, appends are acked and reads answer in
// time, and the final pass reads back every acked append.
func healthy() []rec {
	return []rec{
		appendOp(1, 10, 20, 0, "a", sim.OK),
		appendOp(1, 30, 150, 0, "lost", sim.Failed), // invoked in the fault phase
		readOp(2, 40, 60, 0, "", sim.Failed),
		appendOp(1, 110, 130, 1, "b", sim.OK),
		tailOp(2, 110, 112, 2),
		readOp(2, 120, 160, 1, "b", sim.OK), // waited 40ms on a hole: within T_fill
		tailOp(9, 300, 301, 2),
		readOp(9, 301, 302, 0, "a", sim.OK),
		readOp(9, 302, 303, 1, "b", sim.OK),
	}
}

func epochs(at ...int) []sim.EpochChange {
	out := []sim.EpochChange{{Epoch: 0, At: 0}}
	for i, a := range at {
		out = append(out, sim.EpochChange{Epoch: storage.Epoch(i + 1), At: ms(a)})
	}
	return out
}

func TestCheckLivenessPasses(t *testing.T) {
	res := sim.CheckLiveness(history(healthy()...), epochs(50, 60, 120, 130), bounds())
	assert.Empty(t, res.Violations)
	assert.Equal(t, 2, res.EpochChanges, "only those after the heal count")
	assert.Zero(t, res.Unseen)
}

// TestCheckLivenessExcusesTrimmedAppends: an append after the heal whose
// address a trim took while it was under way may end with an unknown
// outcome (whether its entry got there first is unknowable, and moot).
func TestCheckLivenessExcusesTrimmedAppends(t *testing.T) {
	for name, trim := range map[string]rec{
		"prefix trim above it": trimOp(2, 145, 150, 8, true),
		"trim of its address":  trimOp(2, 145, 150, 7, false),
	} {
		h := append(healthy(), appendOp(1, 140, 160, 7, "c", sim.Unknown), trim)
		res := sim.CheckLiveness(history(h...), epochs(50, 60, 120, 130), bounds())
		assert.Empty(t, res.Violations, name)
	}
}

func TestCheckLivenessCatchesBrokenHistories(t *testing.T) {
	tests := []struct {
		name   string
		change func([]rec) []rec
		epochs []sim.EpochChange
		want   string // the invariant
		detail string // a part of its detail
	}{
		{name: "L1 append after the heal failed", want: "L1", detail: "append after the heal failed",
			change: func(h []rec) []rec { return append(h, appendOp(1, 140, 160, 0, "c", sim.Failed)) }},
		{name: "L1 append after the heal unknown", want: "L1", detail: "failed",
			change: func(h []rec) []rec { return append(h, appendOp(1, 140, 160, 7, "c", sim.Unknown)) }},
		{name: "L1 append unknown, trimmed only after it returned", want: "L1", detail: "failed",
			change: func(h []rec) []rec {
				return append(h, appendOp(1, 140, 160, 7, "c", sim.Unknown), trimOp(2, 165, 170, 8, true))
			}},
		{name: "L1 append after the heal too slow", want: "L1", detail: "took longer than 50ms",
			change: func(h []rec) []rec {
				return append(h, appendOp(1, 140, 199, 3, "c", sim.OK), readOp(9, 303, 304, 3, "c", sim.OK))
			}},
		{name: "L2 epochs churn after the heal", want: "L2", detail: "4 projections committed after the heal",
			epochs: epochs(110, 120, 130, 140)},
		{name: "L3 read after the heal gave no answer", want: "L3", detail: "read after the heal gave no answer",
			change: func(h []rec) []rec { return append(h, readOp(2, 170, 180, 1, "", sim.Failed)) }},
		{name: "L3 read blocked on a hole too long", want: "L3", detail: "took longer than 50ms",
			change: func(h []rec) []rec { return append(h, readOp(2, 170, 260, 1, "b", sim.OK)) }},
		{name: "L3 tail after the heal failed", want: "L3", detail: "tail after the heal gave no answer",
			change: func(h []rec) []rec {
				return append(h, rec{client: 2, kind: sim.OpTail, inv: 170, ret: 171, out: sim.Failed})
			}},
		{name: "L4 acked append unseen by the final pass", want: "L4", detail: "unseen",
			change: func(h []rec) []rec { return h[:len(h)-1] }}, // the pass never read b
		{name: "L4 final pass read another value", want: "L4", detail: "unseen",
			change: func(h []rec) []rec {
				h[len(h)-1] = readOp(9, 302, 303, 1, "other", sim.OK)
				return h
			}},
		{name: "L5 op never returned", want: "L5", detail: "never returned",
			change: func(h []rec) []rec { return append(h, readOp(3, 50, 0, 4, "", sim.Pending)) }},
		{name: "L5 op ignored its timeout", want: "L5", detail: "took longer than 200ms",
			change: func(h []rec) []rec { return append(h, readOp(3, 10, 250, 0, "a", sim.OK)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := healthy()
			if tt.change != nil {
				h = tt.change(h)
			}
			ep := tt.epochs
			if ep == nil {
				ep = epochs(50)
			}
			res := sim.CheckLiveness(history(h...), ep, bounds())
			require.Len(t, res.Violations, 1, "%s", lines(res.Violations))
			v := res.Violations[0]
			assert.Equal(t, tt.want, v.Invariant)
			assert.Contains(t, v.Detail, tt.detail)
			assert.False(t, v.Warning)
		})
	}
}

func TestCheckLivenessCountsUnseenAndAggregates(t *testing.T) {
	h := healthy()
	h = h[:len(h)-2] // the final pass read neither a nor b
	h = append(h, appendOp(1, 140, 160, 0, "c", sim.Failed), appendOp(1, 170, 180, 0, "d", sim.Failed))
	res := sim.CheckLiveness(history(h...), epochs(), bounds())
	assert.Equal(t, 2, res.Unseen)
	require.Len(t, res.Violations, 2, "%s", lines(res.Violations))
	assert.Equal(t, "L1", res.Violations[0].Invariant)
	assert.Contains(t, res.Violations[0].Detail, "(and 1 more)", "one report per kind of failure")
	assert.Equal(t, "L4", res.Violations[1].Invariant)

	b := bounds()
	b.FinalClient = 0
	res = sim.CheckLiveness(history(h...), epochs(), b)
	assert.Zero(t, res.Unseen, "no final pass, no L4")
}

// TestRunLivenessPhase runs a small cluster with a fault phase and checks
// the liveness phase's results: the heal, the epoch count, nothing unseen.
func TestRunLivenessPhase(t *testing.T) {
	o := sim.Options{
		Seed:     3,
		Workload: sim.Workload{Appenders: 2, Appends: 5, Readers: 1, Reads: 5, Reconfigs: 1, HealedAppends: 2, HealedReads: 2, Think: 50 * time.Millisecond},
		Faults:   sim.FaultConfig{Duration: time.Second, Drop: 0.1, Partitions: 1, Pauses: 1},
	}
	res := sim.Run(o)
	require.NoError(t, res.Err)
	assert.Equal(t, time.Second, res.Heal)
	assert.Zero(t, res.Unseen)
	assert.Positive(t, res.EpochChanges, "the reconfiguring client commits an epoch after the heal")
	assert.Positive(t, res.FaultCounts[sim.FaultDrop])
	assert.Positive(t, res.FaultCounts[sim.FaultReconfig])
	healed := 0
	for _, op := range res.History.Ops {
		if op.Kind == sim.OpAppend && op.Invoke >= res.Heal {
			healed++
			assert.Equal(t, sim.OK, op.Outcome, "%v", op)
		}
	}
	assert.GreaterOrEqual(t, healed, 4, "each appender's healed appends, and any of the fault phase's it had left")
}
