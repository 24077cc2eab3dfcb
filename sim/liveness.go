package sim

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/corfulog/corfu/storage"
)

// LivenessBounds are the deadlines of the liveness checks (docs/invariants.md
// L1-L5) for one run, in virtual time since the run started. Liveness is
// checked only after Heal: in the fault phase any operation may fail.
type LivenessBounds struct {
	// Heal is when the last fault stopped and the liveness phase began.
	Heal time.Duration
	// AppendBound is T_append (L1): an append invoked at or after Heal
	// must be acknowledged within it.
	AppendBound time.Duration
	// FillBound is T_fill (L3): a read or a tail invoked at or after Heal
	// must give a definite answer (an entry, junk, unwritten or trimmed;
	// for a tail, the tail) within it, hole or no hole.
	FillBound time.Duration
	// MaxEpochChanges bounds the projections committed at or after Heal
	// (L2): more means reconfigurations keep undoing each other (livelock).
	MaxEpochChanges int
	// OpBound bounds every operation of the run, fault phase included
	// (L5): one that takes longer ignored its timeout.
	OpBound time.Duration
	// FinalClient is the client of the final read-all pass (L4): every
	// acknowledged append must be among what it read. Zero skips L4.
	FinalClient int
}

// LivenessResult is what CheckLiveness found.
type LivenessResult struct {
	Violations []Violation
	// EpochChanges counts the projections committed at or after Heal.
	EpochChanges int
	// Unseen counts the acknowledged appends the final read-all pass did
	// not read back at their address (Jepsen's "unseen"); zero if L4 was
	// skipped.
	Unseen int
}

// CheckLiveness checks a history and the run's epoch changes against the
// liveness rules, after the heal:
//
//   - L1: every append invoked at or after Heal returned OK within
//     AppendBound (the final pass makes no appends).
//   - L2: at most MaxEpochChanges projections were committed at or after
//     Heal.
//   - L3: every read and every tail invoked at or after Heal returned a
//     definite answer within FillBound.
//   - L4: the final pass read every acknowledged append at its address,
//     with its value. S3 already flags a read that returned something
//     else; L4 also catches an address the pass never read (a tail that
//     went back, or a pass cut short).
//   - L5: no operation is still pending, and none took longer than
//     OpBound.
//
// Each rule reports once per kind of failure, naming the first operation
// that broke it and how many did, so a bad run gives a short report.
func CheckLiveness(h *History, epochs []EpochChange, b LivenessBounds) LivenessResult {
	var res LivenessResult
	type key struct{ inv, what string }
	var order []key
	found := map[key]*agg{} // looked up; reported in order
	report := func(inv, what, detail string) {
		k := key{inv, what}
		a := found[k]
		if a == nil {
			a = &agg{first: detail}
			found[k] = a
			order = append(order, k)
		}
		a.n++
	}
	for i := range h.Ops {
		o := &h.Ops[i]
		if o.Outcome == Pending {
			report("L5", "operation never returned", opString(o))
			continue
		}
		took := o.Return - o.Invoke
		if b.OpBound > 0 && took > b.OpBound {
			report("L5", fmt.Sprintf("operation took longer than %v", b.OpBound), opString(o))
		}
		if o.Invoke < b.Heal {
			continue
		}
		switch o.Kind {
		case OpAppend, OpPut:
			if o.Client == b.FinalClient && b.FinalClient != 0 {
				continue
			}
			switch {
			case o.Outcome == Unknown && trimmedWhile(h, o):
				// NB: a prefix trim took the address the append was
				// writing, so whether its entry got there first is
				// unknowable (and moot: the address reads as trimmed).
			case o.Outcome != OK:
				report("L1", "append after the heal failed", opString(o))
			case b.AppendBound > 0 && took > b.AppendBound:
				report("L1", fmt.Sprintf("append after the heal took longer than %v", b.AppendBound), opString(o))
			}
		case OpRead, OpTail:
			def := definite(o.Outcome)
			if o.Kind == OpTail {
				def = o.Outcome == OK
			}
			switch {
			case !def:
				report("L3", o.Kind.String()+" after the heal gave no answer", opString(o))
			case b.FillBound > 0 && took > b.FillBound:
				report("L3", fmt.Sprintf("%s after the heal took longer than %v", o.Kind, b.FillBound), opString(o))
			}
		}
	}
	for _, e := range epochs {
		if e.At >= b.Heal {
			res.EpochChanges++
		}
	}
	if res.EpochChanges > b.MaxEpochChanges {
		var first EpochChange
		for _, e := range epochs {
			if e.At >= b.Heal {
				first = e
				break
			}
		}
		report("L2", "too many epoch changes after the heal", fmt.Sprintf(
			"%d projections committed after the heal at %v (the first, epoch %d, at %v), bound %d",
			res.EpochChanges, b.Heal, first.Epoch, first.At, b.MaxEpochChanges))
	}
	if b.FinalClient != 0 {
		res.Unseen = unseen(h, b.FinalClient, report)
	}
	for _, k := range order {
		a := found[k]
		d := k.what + ": " + a.first
		if a.n > 1 {
			d += fmt.Sprintf(" (and %d more)", a.n-1)
		}
		res.Violations = append(res.Violations, Violation{Invariant: k.inv, Detail: d})
	}
	sortViolations(res.Violations)
	return res
}

// unseen counts the acknowledged appends that the final client did not
// read back, reporting each under L4.
func unseen(h *History, final int, report func(inv, what, detail string)) int {
	var acked, seen []*Op
	var mark storage.Address              // the highest prefix trim that did not fail
	trimmed := map[storage.Address]bool{} // single trims that did not fail; looked up, never iterated
	for i := range h.Ops {
		o := &h.Ops[i]
		switch {
		case o.Kind == OpAppend && o.Outcome == OK:
			acked = append(acked, o)
		case o.Kind == OpRead && o.Client == final && o.Outcome == OK:
			seen = append(seen, o)
		case o.Kind == OpTrim && o.Value == "prefix" && o.Outcome != Failed:
			mark = max(mark, o.Addr)
		case o.Kind == OpTrim && o.Outcome != Failed:
			trimmed[o.Addr] = true
		}
	}
	slices.SortStableFunc(seen, func(a, b *Op) int { return cmp.Compare(a.Addr, b.Addr) })
	n := 0
	for _, a := range acked {
		if a.Addr < mark || trimmed[a.Addr] {
			continue // trimmed: S3 checks what reads of it returned
		}
		i, ok := slices.BinarySearchFunc(seen, a.Addr, func(o *Op, addr storage.Address) int { return cmp.Compare(o.Addr, addr) })
		hit := false
		for ; ok && i < len(seen) && seen[i].Addr == a.Addr; i++ {
			if seen[i].Value == a.Value {
				hit = true
				break
			}
		}
		if !hit {
			n++
			report("L4", "acknowledged append unseen by the final read-all pass", opString(a))
		}
	}
	return n
}

// trimmedWhile reports whether a trim of the address of o, an append with
// an unknown outcome (a prefix trim above it, or a trim of it), was invoked
// before o returned.
func trimmedWhile(h *History, o *Op) bool {
	for i := range h.Ops {
		t := &h.Ops[i]
		covers := t.Value == "prefix" && t.Addr > o.Addr || t.Value != "prefix" && t.Addr == o.Addr
		if t.Kind == OpTrim && t.Outcome != Failed && covers && t.Invoke < o.Return {
			return true
		}
	}
	return false
}
