package bank

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCheckCatches: the final checks fail on a total that changed, a
// committed transfer missing from the ledger, a ledger entry of a transfer
// that did not happen or that no teller made, balances the ledger does not
// explain, and an auditor whose ledger differs.
func TestCheckCatches(t *testing.T) {
	good := func() (*run, []int64, map[string]Transfer) {
		r := &run{o: SimOptions{Accounts: 2, Initial: 10}, rep: &Report{}, outcome: map[string]outcome{
			"a": acked, "u": unknown, "d": declined, "f": failed,
		}}
		return r, []int64{7, 13}, map[string]Transfer{"a": {0, 1, 2}, "u": {0, 1, 1}}
	}
	r, balances, ledger := good()
	r.check(balances, ledger, ledger)
	assert.Empty(t, r.errs, "a consistent end")

	cases := map[string]func(r *run, balances []int64, ledger, audited map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer){
		"total changed": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			return []int64{7, 14}, l, a
		},
		"committed transfer lost": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			delete(l, "a")
			delete(a, "a")
			return []int64{9, 11}, l, a
		},
		"declined transfer applied": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			l["d"], a["d"] = Transfer{1, 0, 1}, Transfer{1, 0, 1}
			return []int64{8, 12}, l, a
		},
		"unknown entry": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			l["x"], a["x"] = Transfer{1, 0, 1}, Transfer{1, 0, 1}
			return []int64{8, 12}, l, a
		},
		"balances unexplained": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			return []int64{8, 12}, l, a
		},
		"auditor differs": func(r *run, b []int64, l, a map[string]Transfer) ([]int64, map[string]Transfer, map[string]Transfer) {
			return b, l, map[string]Transfer{"a": {0, 1, 2}}
		},
	}
	for name, spoil := range cases {
		r, balances, ledger := good()
		audited := map[string]Transfer{}
		for k, v := range ledger {
			audited[k] = v
		}
		b, l, a := spoil(r, balances, ledger, audited)
		r.check(b, l, a)
		assert.NotEmpty(t, r.errs, name)
	}
}
