package sim

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/corfulog/corfu/storage"
)

// The linearizability model.
//
// CheckLinearizable sees the log as a map from global address to a
// write-once register, and checks each address on its own (porcupine's
// partitions): a history is linearizable when every address's is. A
// register starts empty; the first write sets it to a value, or to junk, for
// good. The history's operations become register operations as follows.
//
//   - An append acked (OK) at a is a write of its value at a, over its
//     [Invoke, Return] interval.
//   - An append that did not fail but was not acked at a (its outcome is
//     Unknown or it is still Pending, or it was acked elsewhere) is a write
//     of its value at a only if some read returned that value at a, and no
//     append of that value was acked at a. Its interval runs from its Invoke
//     to past the end of the history, because a reader may complete a partly
//     written chain at any later time. Of several such appends of one value
//     only the first invoked is kept: writes of one value are idempotent and
//     its interval contains the others'. Such writes are otherwise dropped:
//     an append whose address nobody saw has no address to check. A value at
//     two addresses is S5's business, not this model's (see Check).
//   - A failed append is dropped: it must have had no effect.
//   - A read that returned OK with value v reads v.
//   - A read that returned Unwritten reads the empty register: the chain's
//     tail had no entry when it answered.
//   - A read that returned Junk filled the address itself (or found it
//     filled): it is a fill followed by a read of junk, as one step that
//     succeeds when the register is empty or already junk.
//   - A fill whose outcome is Junk writes junk the same way.
//   - A write of the value a register already holds succeeds and changes
//     nothing, so that two possible copies of one append (a retry) agree.
//
// Everything else is left out: reads that failed, timed out or returned
// Trimmed (S3 checks those), fills with another outcome, trims and tails.

// linKind is the kind of a register operation.
type linKind uint8

const (
	linWrite linKind = iota + 1
	linRead
	linFill
)

// linInput is the input of a register operation. It carries its address so
// that the model can partition by it.
type linInput struct {
	Addr  storage.Address
	Kind  linKind
	Value string // the value a write writes
	Stray bool   // a write from an append not acked at Addr
	ID    int    // the history operation's ID
}

// linOutput is the output of a register operation: for a read, the outcome
// and value it returned; for a write, the append's outcome.
type linOutput struct {
	Outcome Outcome
	Value   string
}

// linState is the state of one address's register.
type linState struct {
	Written bool
	Junk    bool
	Value   string
}

func (s linState) String() string {
	switch {
	case !s.Written:
		return "empty"
	case s.Junk:
		return "junk"
	}
	return fmt.Sprintf("%q", s.Value)
}

func linStep(state, input, output any) (bool, any) {
	s, in, out := state.(linState), input.(linInput), output.(linOutput)
	fill := func() (bool, any) {
		if !s.Written {
			return true, linState{Written: true, Junk: true}
		}
		return s.Junk, s
	}
	switch in.Kind {
	case linWrite:
		if !s.Written {
			return true, linState{Written: true, Value: in.Value}
		}
		return !s.Junk && s.Value == in.Value, s
	case linFill:
		return fill()
	case linRead:
		switch out.Outcome {
		case OK:
			return s.Written && !s.Junk && s.Value == out.Value, s
		case Junk:
			return fill()
		case Unwritten:
			return !s.Written, s
		}
	}
	return false, s
}

func linDescribe(input, output any) string {
	in, out := input.(linInput), output.(linOutput)
	switch in.Kind {
	case linWrite:
		if in.Stray {
			return fmt.Sprintf("append(%q) -> %s, maybe at %d", in.Value, out.Outcome, in.Addr)
		}
		return fmt.Sprintf("append(%q) -> %d", in.Value, in.Addr)
	case linFill:
		return fmt.Sprintf("fill(%d) -> junk", in.Addr)
	}
	if out.Outcome == OK {
		return fmt.Sprintf("read(%d) -> %q", in.Addr, out.Value)
	}
	return fmt.Sprintf("read(%d) -> %s", in.Addr, out.Outcome)
}

// partitionByAddr splits operations by address, keeping their order within
// each address, with addresses in increasing order.
func partitionByAddr(ops []porcupine.Operation) [][]porcupine.Operation {
	sorted := slices.Clone(ops)
	slices.SortStableFunc(sorted, func(a, b porcupine.Operation) int {
		return cmp.Compare(a.Input.(linInput).Addr, b.Input.(linInput).Addr)
	})
	var parts [][]porcupine.Operation
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Input.(linInput).Addr == sorted[i].Input.(linInput).Addr {
			j++
		}
		parts = append(parts, sorted[i:j:j])
		i = j
	}
	return parts
}

// LogModel returns the porcupine model CheckLinearizable checks against: one
// write-once register per address (the comment at the top of this file
// describes it). Pass it to porcupine.VisualizePath with the Info of a
// LinearizabilityResult to draw the history.
func LogModel() porcupine.Model {
	return porcupine.Model{
		Partition:         partitionByAddr,
		Init:              func() any { return linState{} },
		Step:              linStep,
		Equal:             func(a, b any) bool { return a.(linState) == b.(linState) },
		DescribeOperation: linDescribe,
		DescribeState:     func(s any) string { return s.(linState).String() },
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return info.(string)
		},
	}
}

// LinearizabilityResult is the outcome of CheckLinearizable.
type LinearizabilityResult struct {
	// Result is porcupine.Ok when the history is linearizable,
	// porcupine.Illegal when it is not, and porcupine.Unknown when the
	// check ran out of time: that is no pass.
	Result porcupine.CheckResult
	// Info holds what porcupine.VisualizePath (with LogModel) needs to draw
	// the history and the longest linearizations found.
	Info porcupine.LinearizationInfo
	// Illegal lists, when Result is porcupine.Illegal, the addresses whose
	// operations have no linearization, in increasing order. If the check
	// also ran out of time, some of them may only be unfinished.
	Illegal []storage.Address
	// Ops is the number of register operations checked, over Addrs
	// addresses.
	Ops, Addrs int
}

// Violations returns the result as violations: one "Lin" violation per
// address without a linearization, or one "LinUnknown" violation when the
// check ran out of time. A linearizable history gives none.
func (r LinearizabilityResult) Violations() []Violation {
	switch r.Result {
	case porcupine.Illegal:
		vs := make([]Violation, 0, len(r.Illegal))
		for _, a := range r.Illegal {
			vs = append(vs, Violation{Invariant: "Lin", Addr: a,
				Detail: "the operations on this address are not linearizable as a write-once register"})
		}
		return vs
	case porcupine.Unknown:
		return []Violation{{Invariant: "LinUnknown",
			Detail: fmt.Sprintf("linearizability check of %d operations on %d addresses timed out", r.Ops, r.Addrs)}}
	}
	return nil
}

// CheckLinearizable checks that h is linearizable as a log of write-once
// registers, one per address (see LogModel). A timeout of 0 means no limit;
// otherwise a check that runs out of time reports porcupine.Unknown.
// Checking is NP-hard in general but fast here, because each address is
// checked on its own and sees few operations.
func CheckLinearizable(h *History, timeout time.Duration) LinearizabilityResult {
	ops := linOperations(h)
	parts := partitionByAddr(ops)
	res, info := porcupine.CheckOperationsVerbose(LogModel(), ops, timeout)
	r := LinearizabilityResult{Result: res, Info: info, Ops: len(ops), Addrs: len(parts)}
	if res == porcupine.Illegal {
		// A partition is linearizable when some partial linearization
		// covers all of its operations.
		for i, lins := range info.PartialLinearizations() {
			longest := 0
			for _, l := range lins {
				longest = max(longest, len(l))
			}
			if longest < len(parts[i]) {
				r.Illegal = append(r.Illegal, parts[i][0].Input.(linInput).Addr)
			}
		}
	}
	return r
}

// linOperations turns a history into register operations, as the comment at
// the top of this file describes, in a deterministic order.
func linOperations(h *History) []porcupine.Operation {
	var end time.Duration // past every time in the history
	for _, o := range h.Ops {
		end = max(end, o.Invoke+1, o.Return+1)
	}
	var ops []porcupine.Operation
	add := func(o *Op, in linInput, ret time.Duration, out linOutput) {
		in.ID = o.ID
		ops = append(ops, porcupine.Operation{
			ClientId: o.Client,
			Input:    in,
			Call:     int64(o.Invoke),
			Output:   out,
			Return:   int64(ret),
			Metadata: opString(o),
		})
	}
	type seen struct {
		addr  storage.Address
		value string
	}
	acked := make(map[seen]bool)
	live := make(map[string]*Op) // the first append of a value that did not fail
	var reads []seen             // (address, value) of every OK read
	for i := range h.Ops {
		o := &h.Ops[i]
		switch o.Kind {
		case OpAppend, OpPut:
			// NB: a put's address is unknown: its value can only be a stray
			// write where a read found it.
			if o.Kind == OpAppend && o.Outcome == OK {
				acked[seen{o.Addr, o.Value}] = true
				add(o, linInput{Addr: o.Addr, Kind: linWrite, Value: o.Value}, o.Return, linOutput{Outcome: OK})
			}
			if w := live[o.Value]; o.Outcome != Failed && (w == nil || o.Invoke < w.Invoke) {
				live[o.Value] = o
			}
		case OpRead:
			switch o.Outcome {
			case OK, Junk, Unwritten:
				add(o, linInput{Addr: o.Addr, Kind: linRead}, o.Return, linOutput{Outcome: o.Outcome, Value: o.Value})
			}
			if o.Outcome == OK {
				reads = append(reads, seen{o.Addr, o.Value})
			}
		case OpFill:
			if o.Outcome == Junk {
				add(o, linInput{Addr: o.Addr, Kind: linFill}, o.Return, linOutput{Outcome: Junk})
			}
		}
	}
	// Stray writes: values read at an address where no append of them was
	// acked. One write per address and value is enough, from the append of
	// the value invoked first: writes of one value are idempotent, and its
	// interval contains those of the others.
	slices.SortFunc(reads, func(a, b seen) int {
		return cmp.Or(cmp.Compare(a.addr, b.addr), cmp.Compare(a.value, b.value))
	})
	reads = slices.Compact(reads)
	for _, s := range reads {
		if acked[s] {
			continue
		}
		if o := live[s.value]; o != nil {
			add(o, linInput{Addr: s.addr, Kind: linWrite, Value: s.value, Stray: true}, end, linOutput{Outcome: o.Outcome})
		}
	}
	return ops
}
