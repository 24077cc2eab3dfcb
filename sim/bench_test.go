package sim_test

import (
	"flag"
	"runtime"
	"strings"
	"testing"

	"github.com/corfulog/corfu/sim"
)

// BenchmarkSimEvents measures the simulator's speed on one core: the
// default workload (sim.Options with only a seed: 4 appenders x 50 appends,
// 2 readers x 50 reads, 3 layout servers, a sequencer and 6 units in chains
// of 2), a new seed each iteration. It reports events processed per wall
// second, checks included.
func BenchmarkSimEvents(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var steps uint64
	seed := uint64(0)
	for b.Loop() {
		seed++
		res := sim.Run(sim.Options{Seed: seed})
		if res.Err != nil {
			b.Fatalf("seed %d: %v", seed, res.Err)
		}
		steps += res.Steps
	}
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(steps)/float64(b.N), "events/op")
}

// BenchmarkSweep1000 times a sweep of seeds 1..1000 of the Swarm workload
// over GOMAXPROCS workers, and reports wall seconds per sweep. It is slow,
// so it runs only when the -bench pattern names it
// (-bench=Sweep1000 -benchtime=1x), not under -bench=. .
func BenchmarkSweep1000(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Sweep1000") {
		b.Skip("run with -bench=Sweep1000")
	}
	seeds := sim.Seeds(1, 1000)
	var steps uint64
	for b.Loop() {
		res := sim.Sweep(seeds, 0, nil, nil)
		steps += res.Total.Steps
		b.ReportMetric(float64(res.Total.FailedRuns), "failed-runs")
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/sweep")
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}
