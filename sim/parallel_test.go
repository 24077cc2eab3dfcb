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

// withoutHistory is a run's result without its history, for runAll: the
// counts and checks of a sweep, not every run's operations.
func withoutHistory(_ sim.Options, res sim.Result) sim.Result {
	res.History = nil
	return res
}

// firstMatch returns the index of the first element of opts whose run
// f accepts, and what f made of it; -1 if f accepts none. It runs a batch
// of runs at a time (1, 2, 4, ... up to 2*GOMAXPROCS), one batch after
// another, and stops after the batch that holds a match, so it returns
// what a search one run at a time returns.
func firstMatch[T any](opts []sim.Options, f func(o sim.Options, res sim.Result) (T, bool)) (int, T) {
	type answer struct {
		v  T
		ok bool
	}
	// NB: batches grow from one run, so that an early match wastes few.
	batch := 1
	for from := 0; from < len(opts); from, batch = from+batch, min(2*batch, 2*runtime.GOMAXPROCS(0)) {
		to := min(from+batch, len(opts))
		got := runAll(opts[from:to], func(o sim.Options, res sim.Result) answer {
			v, ok := f(o, res)
			return answer{v, ok}
		})
		for i, a := range got {
			if a.ok {
				return from + i, a.v
			}
		}
	}
	var zero T
	return -1, zero
}
