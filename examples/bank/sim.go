package bank

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/internal/simworld"
	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

// SimOptions shape a simulated run of the bank (Simulate). The zero value
// takes every default.
type SimOptions struct {
	Accounts int   // default 4
	Tellers  int   // clients that transfer; default 3
	Initial  int64 // each account's starting balance; default 100
	// OnClient, if set, is called with every client the run opens, and
	// its role ("setup", "teller", "auditor", "checkpointer", "joiner" or
	// "final"), before anything runs on it.
	OnClient func(role string, c *corfu.Client)
	// Tune, if set, adjusts the simulator's options the seed gives.
	Tune func(o *sim.Options)
}

// Report is what a simulated run of the bank did.
type Report struct {
	Seed uint64
	// Transfers by outcome: committed, outcome unknown, declined
	// (insufficient funds) and failed (definitely not applied).
	Acked, Unknown, Declined, Failed int
	// Audits counts the reads of every balance at one moment (read-only
	// transactions and snapshots) that succeeded: each saw the total.
	Audits int
	// Trims counts the checkpoint-and-trim cycles that trimmed.
	Trims int
	// Total is the total of the final balances.
	Total int64
	// Ledger counts the final ledger's entries.
	Ledger int
	// Faults counts the faults injected, by kind.
	Faults      map[sim.FaultKind]int
	VirtualTime time.Duration
	Steps       uint64 // events the simulator processed
}

// healedBound bounds how long after the heal an operation may take to
// succeed, attempt after attempt (faults leave holes below the tail that a
// reader waits out one after another, a hole-fill wait each, before it
// fills them; the next attempt finds them filled).
const healedBound = 5 * time.Minute

// Simulate runs the bank under the faults of seed (sim.Swarm: the whole
// catalog): a setup client funds the accounts; tellers transfer money
// between random accounts, then a few more times after the heal, and audit
// the total in read-only transactions and snapshots; an auditor hosts the
// ledger alone; a checkpointer checkpoints and trims the log; a replica
// joins after the heal from the checkpoint. At the end a fresh replica
// reads everything. It returns an error if any check fails: every audit
// and the final balances sum to the starting total; every committed
// transfer is in the ledger, and every ledger entry is a transfer that
// committed or whose outcome was unknown; the final balances are the
// starting ones moved by the ledger's transfers; the auditor's ledger is
// the replica's.
func Simulate(seed uint64, o SimOptions) (*Report, error) {
	if o.Accounts == 0 {
		o.Accounts = 4
	}
	if o.Tellers == 0 {
		o.Tellers = 3
	}
	if o.Initial == 0 {
		o.Initial = 100
	}
	so := sim.Swarm(seed)
	if o.Tune != nil {
		o.Tune(&so)
	}
	w, err := simworld.New(so, o.Tellers+5)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	r := &run{w: w, o: o, rep: &Report{Seed: seed}, outcome: map[string]outcome{}}
	err = r.run()
	r.rep.Faults = w.Faults.Counts()
	r.rep.VirtualTime = w.Since()
	r.rep.Steps = w.Sched.Steps()
	return r.rep, err
}

// outcome is a transfer's, as its teller saw it.
type outcome int

const (
	acked outcome = iota + 1
	unknown
	declined
	failed
)

type run struct {
	w       *simworld.World
	o       SimOptions
	rep     *Report
	outcome map[string]outcome // by transfer ID
	tellers []*Bank
	auditor *Auditor
	funded  bool
	errs    []error
}

// violation records a failed check.
func (r *run) violation(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *run) open(role string, node transport.NodeID) (*tango.Runtime, error) {
	c, err := r.w.Open(node)
	if err != nil {
		return nil, err
	}
	if r.o.OnClient != nil {
		r.o.OnClient(role, c)
	}
	return tango.New(c, tango.Options{Logger: simLogger(role, string(node), r.w)}), nil
}

func (r *run) bank(role string, node transport.NodeID) (*Bank, error) {
	rt, err := r.open(role, node)
	if err != nil {
		return nil, err
	}
	return Open(rt, r.o.Accounts)
}

// healed runs f until it succeeds; after the heal it must within
// healedBound.
func (r *run) healed(f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if r.w.Healed() && r.w.Since() > r.w.Heal+healedBound {
			return fmt.Errorf("still failing %v after the heal: %w", r.w.Since()-r.w.Heal, err)
		}
		if err := r.w.Sleep(10 * time.Millisecond); err != nil {
			return err
		}
	}
}

func (r *run) think(rng *rand.Rand, n int) error {
	fault := max(r.w.Heal, time.Second)
	return r.w.Sleep(time.Duration(rng.Int64N(int64(2*fault/time.Duration(n)) + 1)))
}

// audit reads every balance at one moment, now or, one time in three, as
// of the runtime's position, and checks the total.
func (r *run) audit(b *Bank, rng *rand.Rand, who string) error {
	ctx, cancel := r.w.Context()
	defer cancel()
	funded := r.funded // NB: before the audit began, so the audit must see it
	var balances []int64
	var err error
	how := "a read-only transaction"
	if rng.IntN(3) == 0 {
		// A snapshot as of a position at or past the tail as it is now.
		how = "a snapshot"
		if err = b.Runtime().Sync(ctx); err == nil {
			balances, err = b.BalancesAt(ctx, b.Runtime().Position())
		}
	} else {
		balances, err = b.Balances(ctx)
	}
	if err != nil {
		return err
	}
	r.rep.Audits++
	if want := int64(r.o.Accounts) * r.o.Initial; funded && Total(balances) != want {
		r.violation("%s: %s saw balances %v, total %d, not %d", who, how, balances, Total(balances), want)
	}
	return nil
}

func (r *run) run() error {
	w, o := r.w, r.o
	w.Go(func(node transport.NodeID) error { // setup
		b, err := r.bank("setup", node)
		if err != nil {
			return err
		}
		return r.healed(func() error {
			ctx, cancel := w.Context()
			defer cancel()
			if err := b.Fund(ctx, o.Initial); err != nil {
				return err
			}
			r.funded = true
			return nil
		})
	})
	for i := range o.Tellers {
		w.Go(func(node transport.NodeID) error { return r.teller(i, node) })
	}
	w.Go(func(node transport.NodeID) error { // the auditor
		rt, err := r.open("auditor", node)
		if err != nil {
			return err
		}
		if r.auditor, err = OpenAuditor(rt); err != nil {
			return err
		}
		rng := w.Sched.Fork(string(node))
		for range 5 {
			if err := r.think(rng, 5); err != nil {
				return err
			}
			ctx, cancel := w.Context()
			_, _ = r.auditor.Ledger(ctx) // NB: may wait for a decision record, or fail under faults
			cancel()
		}
		return nil
	})
	w.Go(func(node transport.NodeID) error { // the checkpointer
		b, err := r.bank("checkpointer", node)
		if err != nil {
			return err
		}
		rng := w.Sched.Fork(string(node))
		cycle := func() error {
			ctx, cancel := w.Context()
			defer cancel()
			if _, err := b.Runtime().Checkpoint(ctx); err != nil {
				return err
			}
			if _, err := b.Runtime().Trim(ctx); err != nil {
				return err
			}
			r.rep.Trims++
			return nil
		}
		for range 2 {
			if err := r.think(rng, 3); err != nil {
				return err
			}
			_ = cycle()
		}
		if err := w.UntilHeal(); err != nil {
			return err
		}
		if err := r.think(rng, 10); err != nil {
			return err
		}
		return r.healed(cycle)
	})
	w.Go(func(node transport.NodeID) error { // the late joiner
		if err := w.UntilHeal(); err != nil {
			return err
		}
		if err := w.Sleep(max(w.Heal, time.Second) / 2); err != nil {
			return err
		}
		b, err := r.bank("joiner", node)
		if err != nil {
			return err
		}
		rng := w.Sched.Fork(string(node))
		return r.healed(func() error { return r.audit(b, rng, "the late joiner") })
	})
	if err := w.Run(); err != nil {
		return err
	}
	if !r.funded {
		return errors.New("the accounts were never funded")
	}
	// Every teller appends the decision records it still owes, for the
	// auditor; then a fresh replica reads everything.
	w.Go(func(node transport.NodeID) error {
		for _, b := range r.tellers {
			if err := r.healed(func() error {
				ctx, cancel := w.Context()
				defer cancel()
				return b.Runtime().Flush(ctx)
			}); err != nil {
				return err
			}
		}
		b, err := r.bank("final", node)
		if err != nil {
			return err
		}
		var balances []int64
		var entries, audited map[string]Transfer
		if err := r.healed(func() (err error) {
			ctx, cancel := w.Context()
			defer cancel()
			if balances, err = b.Balances(ctx); err != nil {
				return err
			}
			entries, err = b.Ledger(ctx)
			return err
		}); err != nil {
			return err
		}
		if err := r.healed(func() (err error) {
			ctx, cancel := w.Context()
			defer cancel()
			audited, err = r.auditor.Ledger(ctx)
			return err
		}); err != nil {
			return fmt.Errorf("the auditor: %w", err)
		}
		r.check(balances, entries, audited)
		return nil
	})
	if err := w.Run(); err != nil {
		return err
	}
	return errors.Join(r.errs...)
}

// teller transfers money, audits now and then, and carries on after the
// heal.
func (r *run) teller(i int, node transport.NodeID) error {
	w, o := r.w, r.o
	b, err := r.bank("teller", node)
	if err != nil {
		return err
	}
	r.tellers = append(r.tellers, b)
	rng := w.Sched.Fork(string(node))
	n := 8 + rng.IntN(8)
	for j := range n + 3 {
		if j == n {
			if err := w.UntilHeal(); err != nil {
				return err
			}
		}
		if err := r.think(rng, n); err != nil {
			return err
		}
		if rng.IntN(4) == 0 {
			_ = r.audit(b, rng, fmt.Sprintf("teller %d", i)) // NB: may fail under faults
			continue
		}
		from := rng.IntN(o.Accounts)
		to := (from + 1 + rng.IntN(o.Accounts-1)) % o.Accounts
		id := fmt.Sprintf("t%d-%d", i, j)
		ctx, cancel := w.Context()
		err := b.Transfer(ctx, id, from, to, 1+rng.Int64N(30))
		cancel()
		switch {
		case err == nil:
			r.outcome[id] = acked
			r.rep.Acked++
		case errors.Is(err, ErrInsufficient):
			r.outcome[id] = declined
			r.rep.Declined++
		case errors.Is(err, tango.ErrOutcomeUnknown):
			r.outcome[id] = unknown
			r.rep.Unknown++
		default:
			r.outcome[id] = failed
			r.rep.Failed++
		}
	}
	return nil
}

// check checks the final state against what the tellers saw.
func (r *run) check(balances []int64, entries, audited map[string]Transfer) {
	o := r.o
	want := int64(o.Accounts) * o.Initial
	r.rep.Total, r.rep.Ledger = Total(balances), len(entries)
	if r.rep.Total != want {
		r.violation("the final balances %v total %d, not %d", balances, r.rep.Total, want)
	}
	for _, id := range slices.Sorted(maps.Keys(r.outcome)) {
		_, in := entries[id]
		switch oc := r.outcome[id]; {
		case oc == acked && !in:
			r.violation("committed transfer %s is not in the ledger", id)
		case (oc == declined || oc == failed) && in:
			r.violation("transfer %s, which did not happen (outcome %d), is in the ledger", id, oc)
		}
	}
	moved := make([]int64, o.Accounts)
	for i := range moved {
		moved[i] = o.Initial
	}
	for _, id := range slices.Sorted(maps.Keys(entries)) {
		t := entries[id]
		if _, ok := r.outcome[id]; !ok {
			r.violation("ledger entry %s is no teller's transfer", id)
			continue
		}
		moved[t.From] -= t.Amount
		moved[t.To] += t.Amount
	}
	if !slices.Equal(moved, balances) {
		r.violation("the balances %v are not the starting ones moved by the ledger's transfers, %v", balances, moved)
	}
	if !maps.Equal(entries, audited) {
		var extra, missing []string
		for _, id := range slices.Sorted(maps.Keys(audited)) {
			if _, ok := entries[id]; !ok {
				extra = append(extra, id)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(entries)) {
			if _, ok := audited[id]; !ok {
				missing = append(missing, id)
			}
		}
		r.violation("the auditor's ledger differs: it has %v more and %v fewer", extra, missing)
	}
}

// simLogger returns the logger of a runtime: none unless SimLogger is set.
func simLogger(role, node string, w *simworld.World) *slog.Logger {
	if SimLogger == nil {
		return nil
	}
	return SimLogger(role+" "+node, w.Since)
}

// SimLogger, if set, gives every runtime of Simulate's runs a logger: it
// is called with the runtime's role and node, and the run's virtual clock.
var SimLogger func(who string, now func() time.Duration) *slog.Logger
