//go:build race

package bank_test

// raceEnabled says the tests run under the race detector, which slows the
// simulator several times over: the sweeps run fewer seeds then (400, as
// cmd/corfu's TestSimAllFaults does). The race detector checks the code's
// concurrency, which a few hundred seeds exercise; seed coverage is what
// the sweeps without it, and corfu sim --seeds, are for.
const raceEnabled = true
