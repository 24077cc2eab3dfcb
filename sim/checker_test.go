package sim_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
)

// rec is one operation of a test history, with times in milliseconds.
type rec struct {
	client   int
	kind     sim.OpKind
	inv, ret int
	addr     storage.Address
	value    string
	out      sim.Outcome
}

func appendOp(c, inv, ret int, addr storage.Address, v string, out sim.Outcome) rec {
	return rec{client: c, kind: sim.OpAppend, inv: inv, ret: ret, addr: addr, value: v, out: out}
}

func readOp(c, inv, ret int, addr storage.Address, v string, out sim.Outcome) rec {
	return rec{client: c, kind: sim.OpRead, inv: inv, ret: ret, addr: addr, value: v, out: out}
}

func tailOp(c, inv, ret int, tail storage.Address) rec {
	return rec{client: c, kind: sim.OpTail, inv: inv, ret: ret, addr: tail, out: sim.OK}
}

func fillOp(c, inv, ret int, addr storage.Address, out sim.Outcome) rec {
	return rec{client: c, kind: sim.OpFill, inv: inv, ret: ret, addr: addr, out: out}
}

func trimOp(c, inv, ret int, addr storage.Address, prefix bool) rec {
	v := ""
	if prefix {
		v = "prefix"
	}
	return rec{client: c, kind: sim.OpTrim, inv: inv, ret: ret, addr: addr, value: v, out: sim.OK}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// history records recs through the History API, in invocation order.
func history(recs ...rec) *sim.History {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b rec) int { return a.inv - b.inv })
	h := &sim.History{}
	for _, r := range recs {
		v := r.value
		if r.kind == sim.OpRead {
			v = ""
		}
		id := h.Invoke(r.client, r.kind, ms(r.inv), r.addr, v)
		if r.out != sim.Pending {
			h.Return(id, ms(r.ret), r.addr, r.value, r.out, nil)
		}
	}
	return h
}

// correct is a small history of a correct run: two acked appends, a hole
// filled by a reader and an explicit fill, concurrent and later reads, tails
// and trims.
func correct() []rec {
	return []rec{
		tailOp(0, 0, 1, 0),
		appendOp(0, 1, 10, 0, "a", sim.OK),
		appendOp(1, 2, 12, 1, "b", sim.OK),
		readOp(2, 3, 5, 0, "", sim.Unwritten), // concurrent with the append
		readOp(2, 6, 8, 0, "a", sim.OK),       // concurrent, already committed
		readOp(2, 11, 13, 0, "a", sim.OK),
		readOp(3, 13, 15, 1, "b", sim.OK),
		tailOp(3, 14, 15, 3),
		readOp(0, 20, 30, 2, "", sim.Junk), // a hole: the reader filled it
		fillOp(1, 21, 31, 2, sim.Junk),
		readOp(2, 32, 33, 2, "", sim.Junk),
		appendOp(0, 30, 40, 3, "c", sim.Unknown),
		readOp(1, 50, 51, 3, "c", sim.OK),
		tailOp(1, 52, 53, 4),
		tailOp(2, 52, 54, 4),
		trimOp(0, 60, 61, 1, true), // prefix trim: address 0
		trimOp(0, 60, 61, 1, false),
		readOp(1, 62, 63, 0, "", sim.Trimmed),
		readOp(1, 62, 63, 1, "", sim.Trimmed),
		readOp(1, 64, 65, 1, "b", sim.OK), // data may outlive a trim
		appendOp(3, 70, 71, 9, "failed", sim.Failed),
		appendOp(3, 72, 0, 0, "pending", sim.Pending),
	}
}

// correctMonitor feeds a monitor what the replicas of the correct run store.
func correctMonitor(m *sim.Monitor) {
	m.Tokens(1, 0, 2)
	m.Tokens(1, 2, 0)
	for _, n := range []string{"u0", "u1"} {
		m.Stored(0, node(n), 0, []byte("a"))
		m.Stored(1, node(n), 0, []byte("b"))
		m.Filled(2, node(n), 0)
		m.Filled(2, node(n), 0) // a retried fill
	}
	m.Tokens(2, 2, 2) // a new epoch continues above the old tokens
	m.Stored(3, "u0", 0, []byte("c"))
	m.Stored(3, "u0", 0, []byte("c")) // a retried write of the same bytes
}

func TestCheckInvariants(t *testing.T) {
	tests := []struct {
		name    string
		ops     []rec
		monitor func(m *sim.Monitor)
		want    string // the invariant that must be reported; "" for none
	}{
		{name: "correct run passes", ops: correct(), monitor: correctMonitor},
		{name: "empty history passes"},

		{name: "S1 two values", want: "S1", monitor: func(m *sim.Monitor) {
			m.Stored(5, "u0", 0, []byte("x"))
			m.Stored(5, "u1", 0, []byte("y"))
		}},
		{name: "S1 data+junk", want: "S1", monitor: func(m *sim.Monitor) {
			m.Filled(5, "u0", 0)
			m.Stored(5, "u1", 0, []byte("x"))
		}},
		{name: "S1 two acked appends at one address", want: "S1", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			appendOp(1, 0, 10, 4, "y", sim.OK),
		}},
		{name: "S1 concurrent read of another value", want: "S1", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			appendOp(1, 0, 10, 9, "y", sim.Unknown),
			readOp(2, 5, 6, 4, "y", sim.OK),
		}},

		{name: "S2 disagreement", want: "S2", ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			appendOp(1, 0, 10, 0, "y", sim.Unknown),
			readOp(2, 20, 21, 3, "x", sim.OK),
			readOp(3, 22, 23, 3, "y", sim.OK),
		}},
		{name: "S2 data then junk", want: "S2", ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			readOp(2, 20, 21, 3, "x", sim.OK),
			readOp(3, 22, 23, 3, "", sim.Junk),
		}},
		{name: "S2 fill junk after data read", want: "S2", ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			readOp(2, 20, 21, 3, "x", sim.OK),
			fillOp(3, 22, 23, 3, sim.Junk),
		}},

		{name: "S3 lost acked append", want: "S3", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			readOp(1, 11, 12, 4, "", sim.Unwritten),
		}},
		{name: "S3 junk over acked", want: "S3", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			readOp(1, 11, 12, 4, "", sim.Junk),
		}},
		{name: "S3 other value after ack", want: "S3", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			appendOp(1, 0, 10, 0, "y", sim.Unknown),
			readOp(1, 11, 12, 4, "y", sim.OK),
		}},
		{name: "S3 trimmed-ok case passes", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			trimOp(1, 11, 12, 4, false),
			readOp(1, 13, 14, 4, "", sim.Trimmed),
		}},
		{name: "S3 prefix trim passes", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			trimOp(1, 11, 12, 2, true),
			trimOp(1, 11, 12, 5, true),
			readOp(1, 13, 14, 4, "", sim.Trimmed),
		}},
		{name: "S3 trim concurrent with read passes", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			readOp(1, 11, 14, 4, "", sim.Trimmed),
			trimOp(1, 12, 13, 4, false),
		}},
		{name: "S3 trimmed without a trim", want: "S3", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			trimOp(1, 11, 12, 9, false), // another address
			trimOp(1, 11, 12, 4, true),  // below the address
			trimOp(1, 20, 21, 9, true),  // after the read
			readOp(1, 13, 14, 4, "", sim.Trimmed),
		}},
		{name: "S3 failed trim does not count", want: "S3", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			{client: 1, kind: sim.OpTrim, inv: 11, ret: 12, addr: 4, out: sim.Failed},
			readOp(1, 13, 14, 4, "", sim.Trimmed),
		}},

		{name: "S4 phantom", want: "S4", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			readOp(1, 11, 12, 5, "nobody wrote this", sim.OK),
		}},
		{name: "S4 value of a failed append", want: "S4", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.Failed),
			readOp(1, 11, 12, 4, "x", sim.OK),
		}},
		{name: "S4 read before the append", want: "S4", ops: []rec{
			readOp(1, 0, 2, 4, "x", sim.OK),
			appendOp(0, 3, 10, 4, "x", sim.Unknown),
		}},

		{name: "S5 duplicate", want: "S5", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.OK),
			readOp(1, 11, 12, 4, "x", sim.OK),
			readOp(1, 11, 12, 3, "x", sim.OK),
		}},
		{name: "S5 unknown append may duplicate", ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.Unknown),
			readOp(1, 11, 12, 4, "x", sim.OK),
			readOp(1, 11, 12, 3, "x", sim.OK),
		}},

		{name: "S6 fill over acked", want: "S6", ops: []rec{
			fillOp(1, 0, 1, 7, sim.Junk),
			appendOp(0, 2, 10, 7, "x", sim.OK),
		}},
		{name: "S6 junk read concurrent with acked append", want: "S6", ops: []rec{
			appendOp(0, 0, 10, 7, "x", sim.OK),
			readOp(1, 2, 3, 7, "", sim.Junk),
		}},
		{name: "S6 fill after data stored", want: "S6", monitor: func(m *sim.Monitor) {
			m.Stored(5, "u0", 0, []byte("x"))
			m.Filled(5, "u1", 0)
		}},

		{name: "S11 tail goes back", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(1, 2, 3, 8),
		}},
		{name: "S11 concurrent tails may differ", ops: []rec{
			tailOp(0, 0, 5, 10),
			tailOp(1, 2, 3, 8),
			tailOp(1, 5, 6, 9), // invoked when the first returned: concurrent
		}},
		{name: "S11 tail not past acked append", want: "S11", ops: []rec{
			appendOp(0, 0, 10, 5, "x", sim.OK),
			tailOp(1, 11, 12, 5),
		}},
		{name: "S11 tail past acked append", ops: []rec{
			appendOp(0, 0, 10, 5, "x", sim.OK),
			tailOp(1, 9, 12, 3), // concurrent with the append
			tailOp(1, 13, 14, 6),
		}},

		{name: "S11 tail goes back across a reset", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(1, 20, 21, 8), // the sequencer was bootstrapped at 7 at 10ms
			readOp(1, 22, 23, 8, "", sim.Unwritten),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(10))
		}},
		{name: "S11 tail below the reset's tail", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(1, 20, 21, 6),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(10))
		}},
		{name: "S11 tail goes back after the reset", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(0, 11, 12, 9), // invoked after the reset
			tailOp(1, 20, 21, 8),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(10))
		}},
		{name: "S11 no reset before the tail returned", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(1, 20, 21, 8),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(30))
		}},
		{name: "S11 a bootstrap above every token is no reset", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			tailOp(1, 20, 21, 8),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 10, ms(10))
		}},
		{name: "S11 a reset excuses no tail at an acked append", want: "S11", ops: []rec{
			tailOp(0, 0, 1, 10),
			appendOp(2, 2, 3, 8, "x", sim.OK),
			tailOp(1, 20, 21, 8),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(10))
		}},
		{name: "S13 a reset excuses no unwritten read of an acked append", want: "S13", ops: []rec{
			tailOp(0, 0, 1, 10),
			appendOp(2, 2, 3, 8, "x", sim.OK),
			readOp(1, 20, 21, 8, "", sim.Unwritten),
		}, monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 10)
			m.Bootstrapped(2, 7, ms(10))
		}},
		{name: "S9 two projections chosen for one epoch", want: "S9", monitor: func(m *sim.Monitor) {
			p := &projection.Projection{Sequencer: "seq", Layout: []projection.NodeID{"l0", "l1", "l2"},
				Segments: []projection.Segment{{Stripes: []projection.Chain{{"u0", "u1"}}}}}
			m.Committed("", p)
			a, b := p.Clone(), p.Clone()
			a.Epoch, b.Epoch = 1, 1
			b.Sequencer = "seq1"
			m.Chosen([]projection.NodeID{"l0", "l1"}, 1, a)
			m.Chosen([]projection.NodeID{"l1", "l2"}, 2, b)
		}},
		{name: "S9 chosen then committed agrees", monitor: func(m *sim.Monitor) {
			p := &projection.Projection{Sequencer: "seq", Layout: []projection.NodeID{"l0", "l1", "l2"},
				Segments: []projection.Segment{{Stripes: []projection.Chain{{"u0", "u1"}}}}}
			m.Committed("", p)
			a := p.Clone()
			a.Epoch = 1
			m.Chosen([]projection.NodeID{"l0", "l1"}, 1, a)
			m.Committed("l2", a)
		}},
		{name: "S7 a replica stores before the one ahead of it", want: "S7", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.TrimmedOn = func(storage.Address, projection.NodeID, storage.Epoch) bool { return false }
			m.Stored(5, "u1", 1, []byte("x"))
		}},
		{name: "S7 a trimmed replica ahead holds nothing, and stands for anything", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.TrimmedOn = func(_ storage.Address, n projection.NodeID, _ storage.Epoch) bool { return n == "u0" }
			m.Stored(5, "u1", 1, []byte("x"))
		}},
		{name: "S7 a read returns what the last replica lacks", want: "S7", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 1, []byte("x"))
			m.Returned(5, 1, false, func(b []byte) bool { return string(b) == "x" }, "read 5")
		}},
		{name: "S7 a read returns what the last replica holds", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 1, []byte("x"))
			m.Stored(5, "u1", 1, []byte("x"))
			m.Filled(6, "u0", 1)
			m.Filled(6, "u1", 1)
			m.Returned(5, 1, false, func(b []byte) bool { return string(b) == "x" }, "read 5")
			m.Returned(6, 1, true, nil, "read 6")
		}},
		{name: "S13 unwritten below a tail seen before", want: "S13", ops: []rec{
			tailOp(0, 0, 1, 10),
			readOp(1, 2, 3, 4, "", sim.Unwritten),
		}},
		{name: "S13 unwritten below an acked append", want: "S13", ops: []rec{
			appendOp(0, 0, 1, 6, "x", sim.OK),
			readOp(1, 2, 3, 4, "", sim.Unwritten),
		}},
		{name: "S13 unwritten at the tail is fine", ops: []rec{
			tailOp(0, 0, 1, 10),
			readOp(1, 2, 3, 10, "", sim.Unwritten),
			readOp(1, 0, 3, 4, "", sim.Unwritten), // concurrent with the tail
		}},

		{name: "S7 tail before head", want: "S7", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u1", 0, []byte("x"))
			m.Stored(5, "u0", 0, []byte("x"))
		}},
		{name: "S7 head then tail", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Stored(5, "u1", 0, []byte("x"))
			m.Filled(6, "u0", 0)
			m.Filled(6, "u1", 0)
		}},
		{name: "S7 a late copy after the replicas ahead were reformatted", monitor: func(m *sim.Monitor) {
			// Seed 5094483: u0 and u1 took x, lost it to reformats, and a
			// stale write of x then reached u2.
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1", "u2"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Stored(5, "u1", 0, []byte("x"))
			m.Wiped("u0")
			m.Wiped("u1")
			m.Stored(5, "u2", 0, []byte("x"))
		}},
		{name: "S7 a reformatted replica ahead held something else", want: "S7", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Wiped("u0")
			m.Stored(5, "u1", 0, []byte("y"))
		}},
		{name: "S1 a junk repair of a damaged head that alone held data", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Repaired(5, "u0")
			m.Filled(5, "u0", 1)
			m.Filled(5, "u1", 1)
		}},
		{name: "S1 a junk repair where another replica holds data", want: "S1", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Stored(5, "u1", 0, []byte("x"))
			m.Repaired(5, "u0")
			m.Filled(5, "u0", 1)
		}},
		{name: "S1 junk over data with no repair", want: "S1", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1"} }
			m.Stored(5, "u0", 0, []byte("x"))
			m.Filled(5, "u0", 1)
		}},
		{name: "S7 fill reaching the tail first", want: "S7", monitor: func(m *sim.Monitor) {
			m.ChainOf = func(storage.Address, storage.Epoch) []projection.NodeID { return []projection.NodeID{"u0", "u1", "u2"} }
			m.Filled(6, "u0", 0)
			m.Filled(6, "u2", 0)
		}},

		{name: "S10 token reissued", want: "S10", monitor: func(m *sim.Monitor) {
			m.Tokens(1, 0, 4)
			m.Tokens(2, 2, 3)
		}},
		{name: "S10 token reissued in one epoch", want: "S10", monitor: func(m *sim.Monitor) {
			m.Tokens(1, 10, 1)
			m.Tokens(1, 0, 4)
			m.Tokens(1, 4, 4)
			m.Tokens(1, 8, 3) // [8, 10) is new, 10 is not
		}},
		{name: "S10 tokens out of order pass", monitor: func(m *sim.Monitor) {
			m.Tokens(1, 10, 5)
			m.Tokens(1, 0, 4)
			m.Tokens(2, 4, 6)
			m.Tokens(3, 15, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sim.NewMonitor()
			if tt.monitor != nil {
				tt.monitor(m)
			}
			vs := sim.Check(history(tt.ops...), m)
			if tt.want == "" {
				if len(vs) != 0 {
					t.Fatalf("want no violations, got:\n%s", lines(vs))
				}
				return
			}
			if !slices.ContainsFunc(vs, func(v sim.Violation) bool { return v.Invariant == tt.want }) {
				t.Fatalf("want a %s violation, got:\n%s", tt.want, lines(vs))
			}
			t.Logf("reported:\n%s", lines(vs))
		})
	}
}

func lines(vs []sim.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "  %v\n", v)
	}
	return b.String()
}

func node(s string) projection.NodeID { return projection.NodeID(s) }

func TestCheckS5IsAWarning(t *testing.T) {
	vs := sim.Check(history(
		appendOp(0, 0, 10, 4, "x", sim.OK),
		readOp(1, 11, 12, 3, "x", sim.OK),
	), nil)
	if len(vs) != 1 || vs[0].Invariant != "S5" || !vs[0].Warning || vs[0].Addr != 4 {
		t.Fatalf("want one S5 warning at 4, got:\n%s", lines(vs))
	}
	if s := vs[0].String(); !strings.HasPrefix(s, "S5 warning at address 4: ") {
		t.Errorf("String() = %q", s)
	}
}

func TestCheckAggregatesAndSorts(t *testing.T) {
	var ops []rec
	// Three reads lose the acked append at 9 (S3, and S13: nothing below
	// a known tail), a tail goes back, and a phantom shows up at 2: reported
	// once each, sorted.
	ops = append(ops, appendOp(0, 0, 10, 9, "x", sim.OK))
	for i := range 3 {
		ops = append(ops, readOp(1, 20+i, 21+i, 9, "", sim.Unwritten))
	}
	ops = append(ops, tailOp(0, 30, 31, 20), tailOp(0, 32, 33, 15), readOp(2, 40, 41, 2, "?", sim.OK))
	h := history(ops...)
	want := []string{
		"S3 violation at address 9: read of an acked append returned unwritten: #1 c1 read addr=9",
		"S4 violation at address 2: read returned a value",
		"S11 violation at address 15: tail went back: #5 c0 tail addr=15",
		"S13 violation at address 9: unwritten below an acked append: #1 c1 read addr=9",
	}
	for range 3 { // deterministic from run to run
		vs := sim.Check(h, nil)
		if len(vs) != len(want) {
			t.Fatalf("got %d violations, want %d:\n%s", len(vs), len(want), lines(vs))
		}
		for i, v := range vs {
			if !strings.HasPrefix(v.String(), want[i]) {
				t.Errorf("violation %d = %q, want prefix %q", i, v, want[i])
			}
		}
		if !strings.HasSuffix(vs[0].Detail, "(and 2 more)") {
			t.Errorf("S3 detail %q does not count the other reads", vs[1].Detail)
		}
	}
}

func TestMonitorReportsOnline(t *testing.T) {
	m := sim.NewMonitor()
	var seen []sim.Violation
	m.OnViolation = func(v sim.Violation) {
		seen = append(seen, v)
		_ = m.Count() // the callback may use the monitor
	}
	m.Stored(1, "u0", 0, []byte("x"))
	if len(seen) != 0 {
		t.Fatalf("violation before any conflict: %v", seen)
	}
	m.Stored(1, "u1", 0, []byte("y"))
	if len(seen) != 1 || seen[0].Invariant != "S1" || seen[0].Addr != 1 {
		t.Fatalf("want an S1 violation at once, got %v", seen)
	}
	// Many more, beyond what the monitor keeps in detail.
	for i := range 500 {
		m.Stored(storage.Address(100+i), "u0", 0, []byte("x"))
		m.Stored(storage.Address(100+i), "u1", 0, []byte("y"))
	}
	if got := m.Count(); got != 501 {
		t.Errorf("Count() = %d, want 501", got)
	}
	vs := m.Violations()
	if len(vs) == 0 || len(vs) >= 501 {
		t.Errorf("Violations() kept %d, want a bounded, non-empty set", len(vs))
	}
	if vs[0].Addr != 1 {
		t.Errorf("first kept violation at %d, want 1", vs[0].Addr)
	}
	if len(seen) != 501 {
		t.Errorf("OnViolation called %d times, want 501", len(seen))
	}
}

func TestMonitorDetail(t *testing.T) {
	m := sim.NewMonitor()
	m.Stored(3, "u0", 0, []byte(strings.Repeat("z", 100)))
	m.Filled(3, "u1", 0)
	m.Tokens(1, 0, 10)
	m.Tokens(2, 3, 1)
	got := lines(m.Violations())
	for _, want := range []string{
		`S1 violation at address 3: junk at u1 stored where replicas already held data "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"... (100 bytes) at u0`,
		"S10 violation at address 3: addresses [3, 4) handed out in epoch 2 were already handed out in epoch 1; a replica already held data",
		"S6 violation at address 3: junk at u1 filled after data",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

// bigHistory returns a correct history of n appends by 8 clients, each
// followed by reads of its address and a tail.
func bigHistory(n int) *sim.History {
	h := &sim.History{}
	now := time.Duration(0)
	for i := range n {
		a := storage.Address(i)
		v := fmt.Sprintf("v%d", i)
		c := i % 8
		id := h.Invoke(c, sim.OpAppend, now, 0, v)
		r := h.Invoke((c+1)%8, sim.OpRead, now+time.Microsecond, a, "")
		h.Return(r, now+2*time.Microsecond, a, "", sim.Unwritten, nil)
		h.Return(id, now+3*time.Microsecond, a, v, sim.OK, nil)
		r = h.Invoke((c+2)%8, sim.OpRead, now+4*time.Microsecond, a, "")
		h.Return(r, now+5*time.Microsecond, a, v, sim.OK, nil)
		tl := h.Invoke((c+3)%8, sim.OpTail, now+6*time.Microsecond, 0, "")
		h.Return(tl, now+7*time.Microsecond, a+1, "", sim.OK, nil)
		now += 8 * time.Microsecond
	}
	return h
}

func TestCheckLargeHistory(t *testing.T) {
	n := 25_000 // 100k operations
	if testing.Short() {
		n = 2_500
	}
	h := bigHistory(n)
	start := time.Now()
	if vs := sim.Check(h, nil); len(vs) != 0 {
		t.Fatalf("violations in a correct history:\n%s", lines(vs[:min(len(vs), 10)]))
	}
	t.Logf("checked %d operations in %v", len(h.Ops), time.Since(start))
}

func BenchmarkCheck(b *testing.B) {
	h := bigHistory(25_000)
	for b.Loop() {
		sim.Check(h, nil)
	}
}

// TestMonitorSequencerRestarted: a sequencer restarted from its kept mark
// below an address it handed out breaks S10; one at or above them, or one
// that lost its mark (whose seal vouches for nothing), does not, and what
// another node's sequencer handed out does not count against it.
func TestMonitorSequencerRestarted(t *testing.T) {
	m := sim.NewMonitor()
	m.Tokens(0, 0, 6)
	m.SequencerAnswered("seq", 6)
	m.SequencerAnswered("other", 40)
	m.SequencerRestarted("seq", 6, true)
	require.Empty(t, m.Violations(), "restarted at the end of what it handed out")
	m.SequencerAnswered("seq", 9)
	m.SequencerRestarted("seq", 8, false)
	require.Empty(t, m.Violations(), "no mark kept: nothing vouched for")
	m.SequencerAnswered("seq", 3) // after the amnesia, from a bootstrap at 0
	m.SequencerRestarted("seq", 4, true)
	require.Empty(t, m.Violations(), "only what it handed out since the amnesia counts")
	m.SequencerAnswered("seq", 12)
	m.SequencerRestarted("seq", 8, true)
	v := m.Violations()
	require.Len(t, v, 1)
	require.Equal(t, "S10", v[0].Invariant)
	require.Contains(t, v[0].Detail, "below address 11")
}

// TestMonitorResets: a bootstrap below an address handed out before, or
// below a tail a sequencer answered, is a tail reset; one at or above both
// is not.
func TestMonitorResets(t *testing.T) {
	m := sim.NewMonitor()
	m.Tokens(0, 0, 4)
	m.Bootstrapped(1, 4, ms(10))
	require.Empty(t, m.Resets(), "starts where the tokens ended")
	m.TailAnswered(65) // a restarted sequencer's floor, answered as its tail
	m.Bootstrapped(2, 65, ms(20))
	require.Empty(t, m.Resets())
	m.Bootstrapped(3, 56, ms(30))
	resets := m.Resets()
	require.Len(t, resets, 1)
	require.Equal(t, storage.Address(56), resets[0].Tail)
	require.Equal(t, storage.Address(65), resets[0].High)
}
