//go:build race

package main

// raceEnabled says the tests run under the race detector, which slows the
// simulator several times over: the long sweeps run fewer seeds then (the
// race detector checks the code's concurrency, which a few hundred seeds
// exercise; seed coverage is what corfu sim --seeds sweeps are for).
const raceEnabled = true
