// Package bank is a replicated bank on the object runtime of package tango:
// accounts are registers of balances, one object each, and a ledger (a map
// from transfer ID to transfer) records every transfer. A transfer is one
// transaction over three objects: it reads both balances, writes both, and
// adds its ledger entry; it commits only if neither balance changed since
// it read them, so the total never changes and every committed transfer is
// in the ledger. Any number of clients host the bank; an auditor may host
// the ledger alone (it then decides transfers by their decision records).
//
// Simulate runs the bank under the simulator's faults and checks it.
package bank

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/storage"
)

// Object IDs: the ledger, and account i at FirstAccount+i.
const (
	LedgerID     tango.ObjectID = 1
	FirstAccount tango.ObjectID = 100
)

// ErrInsufficient reports a transfer of more than its source account
// holds. Nothing of it happened.
var ErrInsufficient = errors.New("bank: insufficient funds")

// Transfer is a ledger entry: Amount moved from account From to account To.
type Transfer struct {
	From, To int
	Amount   int64
}

// Bank is one client's replica of the bank: every account and the ledger.
// It is safe for concurrent use.
type Bank struct {
	rt       *tango.Runtime
	accounts []*tango.Register[int64]
	ledger   *tango.Map[string, Transfer]
}

// Open hosts a bank of n accounts on rt. Its errors are tango.NewObject's.
func Open(rt *tango.Runtime, n int) (*Bank, error) {
	b := &Bank{rt: rt}
	var err error
	if b.ledger, err = tango.NewMap[string, Transfer](rt, LedgerID); err != nil {
		return nil, err
	}
	for i := range n {
		a, err := tango.NewRegister[int64](rt, FirstAccount+tango.ObjectID(i))
		if err != nil {
			return nil, err
		}
		b.accounts = append(b.accounts, a)
	}
	return b, nil
}

// Runtime returns the runtime the bank lives in.
func (b *Bank) Runtime() *tango.Runtime { return b.rt }

// Fund sets every account to amount, once: if any account holds money
// already it changes nothing. It is one transaction. Its errors are
// tango.Runtime.RunTx's.
func (b *Bank) Fund(ctx context.Context, amount int64) error {
	return b.rt.RunTx(ctx, func(ctx context.Context) error {
		for _, a := range b.accounts {
			v, err := a.Get(ctx)
			if err != nil {
				return err
			}
			if v != 0 {
				return nil
			}
		}
		for _, a := range b.accounts {
			if err := a.Set(ctx, amount); err != nil {
				return err
			}
		}
		return nil
	})
}

// Transfer moves amount from account from to account to, as transfer id
// (a unique name: it keys the ledger entry). It returns nil once the
// transfer committed.
//
// Errors: ErrInsufficient; those of tango.Runtime.RunTx: a
// *tango.ConflictError when conflicts outlast the retries, an
// *tango.OutcomeUnknownError (errors.Is tango.ErrOutcomeUnknown) when the
// transfer may have happened or not; any other error means it did not.
func (b *Bank) Transfer(ctx context.Context, id string, from, to int, amount int64) error {
	if from == to || from < 0 || to < 0 || from >= len(b.accounts) || to >= len(b.accounts) || amount <= 0 {
		return fmt.Errorf("bank: bad transfer %d -> %d of %d", from, to, amount)
	}
	return b.rt.RunTx(ctx, func(ctx context.Context) error {
		x, err := b.accounts[from].Get(ctx)
		if err != nil {
			return err
		}
		y, err := b.accounts[to].Get(ctx)
		if err != nil {
			return err
		}
		if x < amount {
			return ErrInsufficient
		}
		if err := b.accounts[from].Set(ctx, x-amount); err != nil {
			return err
		}
		if err := b.accounts[to].Set(ctx, y+amount); err != nil {
			return err
		}
		return b.ledger.Put(ctx, id, Transfer{From: from, To: to, Amount: amount})
	})
}

// Balances returns every account's balance, read in one read-only
// transaction: a state the bank was in at one moment. Its errors are
// tango.Runtime.ReadOnly's.
func (b *Bank) Balances(ctx context.Context) ([]int64, error) {
	var out []int64
	err := b.rt.ReadOnly(ctx, func(ctx context.Context) (err error) {
		out, err = b.read(ctx)
		return err
	})
	return out, err
}

// BalancesAt returns every account's balance as of log position pos (a
// snapshot, tango.Runtime.ReadAt). Its errors are ReadAt's.
func (b *Bank) BalancesAt(ctx context.Context, pos storage.Address) ([]int64, error) {
	var out []int64
	err := b.rt.ReadAt(ctx, pos, func(ctx context.Context) (err error) {
		out, err = b.read(ctx)
		return err
	})
	return out, err
}

// read reads every balance in the transaction of ctx.
func (b *Bank) read(ctx context.Context) ([]int64, error) {
	balances := make([]int64, len(b.accounts))
	for i, a := range b.accounts {
		v, err := a.Get(ctx)
		if err != nil {
			return nil, err
		}
		balances[i] = v
	}
	return balances, nil
}

// Ledger returns the ledger's entries, after syncing. Its errors are
// tango.Map's.
func (b *Bank) Ledger(ctx context.Context) (map[string]Transfer, error) { return ledger(ctx, b.ledger) }

// Total returns the sum of balances.
func Total(balances []int64) int64 {
	var t int64
	for _, v := range balances {
		t += v
	}
	return t
}

// Auditor is a replica of the ledger alone. A transfer reads accounts it
// does not host, so it decides each transfer by the decision record the
// transfer's client appends. It is safe for concurrent use.
type Auditor struct {
	rt     *tango.Runtime
	ledger *tango.Map[string, Transfer]
}

// OpenAuditor hosts the ledger on rt. Its errors are tango.NewObject's.
func OpenAuditor(rt *tango.Runtime) (*Auditor, error) {
	l, err := tango.NewMap[string, Transfer](rt, LedgerID)
	if err != nil {
		return nil, err
	}
	return &Auditor{rt: rt, ledger: l}, nil
}

// Ledger returns the ledger's entries, after syncing.
func (a *Auditor) Ledger(ctx context.Context) (map[string]Transfer, error) {
	return ledger(ctx, a.ledger)
}

func ledger(ctx context.Context, m *tango.Map[string, Transfer]) (map[string]Transfer, error) {
	out := map[string]Transfer{}
	err := m.Object().Query(ctx, func(s map[string]Transfer) {
		for k, v := range s {
			out[k] = v
		}
	})
	return out, err
}
