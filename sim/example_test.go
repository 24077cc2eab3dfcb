package sim_test

import (
	"fmt"

	"github.com/corfulog/corfu/sim"
)

// Run one seed of the full fault catalog on durable roles: the seed
// decides the cluster, the workload and the faults, and the same seed
// gives the same run (its trace hash) every time.
func ExampleRun() {
	o := sim.Scenario{Faults: "all", Disk: sim.DiskDurable}.Options(7)
	res := sim.Run(o)
	again := sim.Run(o)
	fmt.Println("passed:", res.Err == nil)
	fmt.Println("same trace:", res.TraceHash == again.TraceHash)
	// Output:
	// passed: true
	// same trace: true
}

// Sweep a range of seeds in parallel, as corfu sim --seeds does.
func ExampleSweep() {
	sc := sim.Scenario{Faults: "crash,partition,drop,reconfig"}
	res := sim.Sweep(sim.Seeds(1, 8), 2, sc.Options, nil)
	fmt.Println("runs:", len(res.Runs), "failed:", len(res.FailedSeeds))
	// Output: runs: 8 failed: 0
}

// A scenario built from input is checked before it is used: Options
// panics on one that Check refuses.
func ExampleScenario_Check() {
	err := sim.Scenario{Faults: "crash,meteor"}.Check()
	fmt.Println(err != nil)
	sc := sim.Scenario{Faults: "none", Latency: "constant:2ms"}
	fmt.Println(sc.Check(), sim.Injected(sc.Options(3)))
	// Output:
	// true
	// <nil> map[]
}
