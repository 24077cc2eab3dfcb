package bank_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/bank"
	"github.com/corfulog/corfu/examples/tango"
)

// Two clients host one bank of four accounts on an in-process cluster and
// transfer money; a transfer of more than an account holds is declined.
func Example() {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	open := func() *bank.Bank {
		c, err := corfu.Open(ctx, cluster.Config())
		if err != nil {
			panic(err)
		}
		b, err := bank.Open(tango.New(c, tango.Options{}), 4)
		if err != nil {
			panic(err)
		}
		return b
	}
	alice, bob := open(), open()
	if err := alice.Fund(ctx, 100); err != nil {
		panic(err)
	}
	if err := alice.Transfer(ctx, "t1", 0, 1, 30); err != nil {
		panic(err)
	}
	if err := bob.Transfer(ctx, "t2", 1, 2, 120); err != nil { // account 1 holds 130
		panic(err)
	}
	err = bob.Transfer(ctx, "t3", 3, 0, 500)
	fmt.Println(errors.Is(err, bank.ErrInsufficient))

	balances, err := bob.Balances(ctx)
	if err != nil {
		panic(err)
	}
	ledger, err := alice.Ledger(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(balances, bank.Total(balances), len(ledger))
	// Output:
	// true
	// [70 10 220 100] 400 2
}

// A simulated run: the bank under the faults of seed 1, checked.
func ExampleSimulate() {
	rep, err := bank.Simulate(1, bank.SimOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("total:", rep.Total)
	fmt.Println("every committed transfer is in the ledger:", rep.Ledger >= rep.Acked)
	// Output:
	// total: 400
	// every committed transfer is in the ledger: true
}
