//go:build race

package sim_test

// raceEnabled says the tests run under the race detector, which slows the
// simulator several times over: TestSim sweeps fewer seeds then (the race
// detector checks the code's concurrency, which a few hundred seeds
// exercise; seed coverage is what corfu sim --seeds sweeps are for).
const raceEnabled = true
