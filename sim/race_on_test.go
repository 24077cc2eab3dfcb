//go:build race

package sim_test

// raceEnabled reports a build with the race detector, which makes a run
// several times slower: TestSim sweeps fewer seeds by default.
const raceEnabled = true
