package sim

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/storage"
)

// CheckReplicas checks S16 (convergence) once the run is over, after the
// final read-all pass: whatever a read returned, data or junk, is on every
// live replica of its address's chain in the newest committed projection.
// A replica that is blank (back with an empty disk, not rejoined), holds
// the address trimmed, or is no unit the cluster knows is skipped; so is
// an address no committed segment covers any more (a trimmed prefix). A
// replica's stored form of an entry ends with its payload, which is what
// a read's Value is compared with.
//
// A chain never takes in a replica for addresses it already holds (a
// spare or a blank unit joins a new open segment only), and a read sees
// data or junk at the chain's tail only once every replica before it has
// it; so in a run that passes, every replica the newest projection keeps
// for an address holds what any read of it returned.
func (c *Cluster) CheckReplicas(h *History) []Violation {
	type seen struct {
		addr  storage.Address
		junk  bool
		value string
	}
	var reads []seen
	first := map[seen]*Op{} // looked up, never iterated
	for i := range h.Ops {
		o := &h.Ops[i]
		if o.Kind != OpRead || (o.Outcome != OK && o.Outcome != Junk) {
			continue
		}
		k := seen{addr: o.Addr, junk: o.Outcome == Junk, value: o.Value}
		if first[k] == nil {
			first[k] = o
			reads = append(reads, k)
		}
	}
	slices.SortStableFunc(reads, func(a, b seen) int { return cmp.Compare(a.addr, b.addr) })
	var out []Violation
	p := c.Latest()
	for _, k := range reads {
		loc, err := p.Locate(k.addr)
		if err != nil {
			continue
		}
		for _, node := range loc.Chain {
			in := c.inspector(node)
			if in == nil {
				// NB: a node of the chain the cluster serves no unit
				// for; every unit it serves has a view (setUnit).
				continue
			}
			if in.Blank() {
				continue
			}
			state, data := in.Inspect(loc.Local)
			var bad string
			switch {
			case state == storage.StateTrimmed:
			case k.junk && state != storage.StateJunk:
				bad = "holds " + state.String() + ", not junk"
			case !k.junk && state != storage.StateData:
				bad = "holds " + state.String() + ", not the data read"
			case !k.junk && !bytes.HasSuffix(data, []byte(payload(k.value))):
				bad = fmt.Sprintf("holds other data (%q)", data[:min(len(data), reportPrefixBytes)])
			}
			if bad != "" {
				out = append(out, Violation{Invariant: "S16", Addr: k.addr, Detail: fmt.Sprintf(
					"replica %s of chain %v (epoch %d) at local address %d %s: %s",
					node, loc.Chain, p.Epoch, loc.Local, bad, opString(first[k]))})
			}
		}
	}
	return out
}
