package tango_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	bankex "github.com/corfulog/corfu/examples/bank"
	"github.com/corfulog/corfu/examples/tango"
)

// TestSimBankMutants: the bank's simulated checks catch each broken rule
// of the transactions within a few seeds, on a seed whose run passes
// without the mutant: committing without read-set validation (on the
// tellers) makes or loses money, and deciding a commit record without its
// decision record (on the auditor, which hosts the ledger alone) puts
// aborted transfers in its ledger.
func TestSimBankMutants(t *testing.T) {
	cases := []struct {
		name string
		role string
		m    tango.Mutants
	}{
		{"skip read-set validation", "teller", tango.Mutants{SkipReadValidation: true}},
		{"replay a commit record without its decision", "auditor", tango.Mutants{ReplayWithoutDecision: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= 100; seed++ {
				var undo []func()
				// NB: few accounts and many tellers, for conflicts.
				_, err := bankex.Simulate(seed, bankex.SimOptions{Accounts: 2, Tellers: 4, OnClient: func(role string, cl *corfu.Client) {
					if role == c.role {
						undo = append(undo, tango.SetMutants(cl.Env(), c.m))
					}
				}})
				for _, u := range undo {
					u()
				}
				if err == nil {
					continue
				}
				_, ctl := bankex.Simulate(seed, bankex.SimOptions{Accounts: 2, Tellers: 4})
				require.NoError(t, ctl, "seed %d fails without the mutant", seed)
				t.Logf("caught by seed %d: %v", seed, err)
				return
			}
			t.Fatalf("the mutant survived 100 seeds")
		})
	}
}
