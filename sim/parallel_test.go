package sim_test

import (
	"runtime"
	"sync"

	"github.com/corfulog/corfu/sim"
)

// runAll runs one simulation per element of opts, GOMAXPROCS at a time, and
// returns what f makes of each, in the order of opts. f runs on the
// workers' goroutines, one call at a time per run; each run is
// deterministic on its own, so the result does not depend on how many
// runs overlap.
func runAll[T any](opts []sim.Options, f func(o sim.Options, res sim.Result) T) []T {
	out := make([]T, len(opts))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(opts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i] = f(opts[i], sim.Run(opts[i]))
			}
		}()
	}
	for i := range opts {
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

// firstMatch returns the index of the first element of opts whose run
// satisfies match, or -1. It runs GOMAXPROCS runs at a time, a batch after
// another, and stops after the batch that holds a match, so it returns the
// same index as a search one run at a time.
func firstMatch(opts []sim.Options, match func(o sim.Options, res sim.Result) bool) int {
	batch := 2 * runtime.GOMAXPROCS(0)
	for from := 0; from < len(opts); from += batch {
		to := min(from+batch, len(opts))
		for i, ok := range runAll(opts[from:to], match) {
			if ok {
				return from + i
			}
		}
	}
	return -1
}
