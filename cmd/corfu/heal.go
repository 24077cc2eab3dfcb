package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/corfulog/corfu/sim"
)

// healTable runs sim.HealTime for every kind of failure on every seed of
// the sweep and prints, per kind, the p50 and p99 of the time to the first
// append and the first read of the affected chain. Its exit status is 1 if
// any run failed its checks or never healed.
func (f *simFlags) healTable(stdout, stderr io.Writer) int {
	type job struct {
		kind string
		seed uint64
	}
	var jobs []job
	for _, k := range sim.HealKinds() {
		for i := range f.seeds {
			jobs = append(jobs, job{k, f.first + uint64(i)})
		}
	}
	results := make([]sim.HealResult, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range f.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = sim.HealTime(jobs[i].seed, jobs[i].kind)
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	status := 0
	fmt.Fprintf(stdout, "heal times over seeds %d..%d (detection timeout %v; cloud latency, round trip about 3.7 ms)\n",
		f.first, f.first+uint64(f.seeds)-1, results[0].Detection)
	fmt.Fprintf(stdout, "%-10s %6s %12s %12s %12s %12s %7s\n", "failure", "runs", "append p50", "append p99", "read p50", "read p99", "failed")
	for _, k := range sim.HealKinds() {
		var apps, reads []time.Duration
		failed := 0
		for _, r := range results {
			if r.Kind != k {
				continue
			}
			if r.Err != nil || r.Append < 0 {
				failed++
				if r.Err != nil {
					fmt.Fprintf(stderr, "corfu sim: heal %s seed %d: %v\n", k, r.Seed, r.Err)
				} else {
					fmt.Fprintf(stderr, "corfu sim: heal %s seed %d: no append after the fault\n", k, r.Seed)
				}
				continue
			}
			apps = append(apps, r.Append)
			if r.Read >= 0 {
				reads = append(reads, r.Read)
			}
		}
		if failed > 0 {
			status = 1
		}
		fmt.Fprintf(stdout, "%-10s %6d %12s %12s %12s %12s %7d\n", k, len(apps)+failed,
			pct(apps, 50), pct(apps, 99), pct(reads, 50), pct(reads, 99), failed)
	}
	return status
}

// pct returns the p-th percentile of ds (nearest rank), rounded, or "-".
func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)].Round(100 * time.Microsecond).String()
}
