package sim

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// SeedResult is the summary of one run of a sweep: what Run returned,
// without the history, so that a sweep over many seeds stays small.
type SeedResult struct {
	Seed    uint64
	Options Options // the options the run was given
	// Err is the run's error (Result.Err), or the panic of the run itself
	// if it panicked outside the simulated tasks; nil if the run passed.
	Err         error
	Ops         int         // client operations in the history
	Appends     int         // acknowledged appends
	Reads       int         // reads that returned an entry or junk
	FailedOps   int         // operations that ended with an error
	Epochs      int         // the newest epoch committed
	Violations  []Violation // every violation and warning, sorted
	Steps       uint64      // events processed
	VirtualTime time.Duration
	TraceHash   uint64
	// Faults counts the faults injected, by kind; nil when none were, or
	// when the simulator does not report them.
	Faults map[string]int
}

// Passed reports whether the run passed: it ended without an error.
// Warnings do not fail a run.
func (r SeedResult) Passed() bool { return r.Err == nil }

// Warnings returns the number of the run's violations that are warnings.
func (r SeedResult) Warnings() int {
	n := 0
	for _, v := range r.Violations {
		if v.Warning {
			n++
		}
	}
	return n
}

// SweepTotals adds up the runs of a sweep, the counts of SeedResult
// summed.
type SweepTotals struct {
	Runs        int            // runs made
	FailedRuns  int            // runs that failed
	Ops         int            // client operations in the histories
	Appends     int            // acknowledged appends
	Reads       int            // reads that returned an entry or junk
	FailedOps   int            // operations that ended with an error
	Violations  int            // violations that are not warnings
	Warnings    int            // violations that are warnings
	Steps       uint64         // events processed
	VirtualTime time.Duration  // virtual time simulated
	Faults      map[string]int // faults injected, by kind; nil if none
}

// SweepResult is the outcome of a sweep. It depends only on the seeds and
// the options, never on the number of workers or the order in which runs
// finished.
type SweepResult struct {
	Runs        []SeedResult // one per seed, in increasing seed order
	FailedSeeds []uint64     // the seeds whose run failed, increasing
	Total       SweepTotals
}

// Failures returns the runs that failed, in increasing seed order.
func (s SweepResult) Failures() []SeedResult {
	var out []SeedResult
	for _, r := range s.Runs {
		if !r.Passed() {
			out = append(out, r)
		}
	}
	return out
}

// Seeds returns the seeds first, first+1, ..., first+n-1.
func Seeds(first uint64, n int) []uint64 {
	out := make([]uint64, max(n, 0))
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// Sweep runs one simulation per seed, workers at a time on as many
// goroutines (GOMAXPROCS if workers is 0 or less), and summarizes them.
// opts gives each seed's options; nil means Swarm. Each run is
// deterministic on its own, so the result is the same whatever workers is.
//
// progress, if not nil, is called after each run with the number of runs
// done, the total and the number that failed so far. Calls never overlap,
// but they come from the sweep's goroutines; progress must return quickly
// and should throttle any output itself.
//
// A run that panics (outside its simulated tasks, whose panics are the
// run's error already) fails with the panic as its error; the sweep goes
// on.
func Sweep(seeds []uint64, workers int, opts func(seed uint64) Options, progress func(done, total, failed int)) SweepResult {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(min(workers, len(seeds)), 1)
	if opts == nil {
		opts = Swarm
	}
	runs := make([]SeedResult, len(seeds))
	var (
		mu     sync.Mutex
		done   int
		failed int
	)
	next := make(chan int)
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			for i := range next {
				r := runSeed(seeds[i], opts)
				runs[i] = r
				mu.Lock()
				done++
				if !r.Passed() {
					failed++
				}
				if progress != nil {
					progress(done, len(seeds), failed)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	_ = g.Wait() // the workers return no errors; a run's error is its result

	slices.SortStableFunc(runs, func(a, b SeedResult) int { return cmp.Compare(a.Seed, b.Seed) })
	res := SweepResult{Runs: runs}
	t := &res.Total
	for _, r := range runs {
		t.Runs++
		if !r.Passed() {
			t.FailedRuns++
			res.FailedSeeds = append(res.FailedSeeds, r.Seed)
		}
		t.Ops += r.Ops
		t.Appends += r.Appends
		t.Reads += r.Reads
		t.FailedOps += r.FailedOps
		w := r.Warnings()
		t.Warnings += w
		t.Violations += len(r.Violations) - w
		t.Steps += r.Steps
		t.VirtualTime += r.VirtualTime
		for k, n := range r.Faults {
			if t.Faults == nil {
				t.Faults = make(map[string]int)
			}
			t.Faults[k] += n
		}
	}
	return res
}

// runSeed runs one seed and summarizes it, turning a panic of the run
// into its error.
func runSeed(seed uint64, opts func(uint64) Options) (out SeedResult) {
	out.Seed = seed
	defer func() {
		if p := recover(); p != nil {
			out.Err = fmt.Errorf("sim: seed %d: run panicked: %v\n%s", seed, p, debug.Stack())
		}
	}()
	o := opts(seed)
	o.Seed = seed
	out.Options = o
	return Summarize(o, Run(o))
}

// Summarize returns the summary of a run made with options o, as a sweep
// keeps it.
func Summarize(o Options, res Result) SeedResult {
	r := SeedResult{
		Seed:        o.Seed,
		Options:     o,
		Err:         res.Err,
		Appends:     res.Appends,
		Reads:       res.Reads,
		FailedOps:   res.Failed,
		Epochs:      res.Epochs,
		Violations:  res.Violations,
		Steps:       res.Steps,
		VirtualTime: res.VirtualTime,
		TraceHash:   res.TraceHash,
		Faults:      FaultCounts(res),
	}
	if res.History != nil {
		r.Ops = len(res.History.Ops)
	}
	return r
}

// FaultCounts returns the faults a run injected, counted by kind (the
// reconfigurations of the workload's reconfiguring client included, as
// Result.FaultCounts counts them), or nil if it injected none.
func FaultCounts(res Result) map[string]int {
	var out map[string]int
	for k, n := range res.FaultCounts {
		if n == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]int, len(res.FaultCounts))
		}
		out[string(k)] = n
	}
	return out
}
