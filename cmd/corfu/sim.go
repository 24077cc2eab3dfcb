package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/corfulog/corfu/sim"
)

// maxReported bounds the failing seeds a sweep describes in full,
// maxViolations the violations printed for one run, and maxFaultLog the
// fault records listed for a failing run.
const (
	maxReported   = 10
	maxViolations = 20
	maxFaultLog   = 40
)

// progressEvery throttles the progress line of a sweep.
const progressEvery = 100 * time.Millisecond

// simFlags are the parsed flags of "corfu sim".
type simFlags struct {
	fs         *flag.FlagSet
	seed       uint64
	seeds      int
	first      uint64
	workers    int
	progress   bool
	trace      string
	traceFrom  time.Duration
	traceUntil time.Duration
	traceMax   int
	heal       bool
	sc         sim.Scenario
}

// scenarioFlags are the flags a replay command repeats, in its order.
var scenarioFlags = []string{"faults", "disk", "detector", "async", "latency", "fault-latency", "duration"}

func parseSimFlags(args []string, stderr io.Writer) (*simFlags, error) {
	f := &simFlags{fs: flag.NewFlagSet("sim", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: corfu sim --seed N [flags]     replay one run
       corfu sim --seeds N [flags]    sweep seeds 1..N in parallel

Each run's options are derived from its seed (sim.Swarm); the scenario flags
(--faults, --latency, --fault-latency, --duration) are applied on top of them.
--faults LIST injects exactly the kinds listed, with the seed's own rates where
it chose them and rates drawn from the seed otherwise; "none" leaves a run with
no fault phase and no reconfigurations. The exit status is 0 only if every run
passed, 1 if one failed, 2 for bad flags.

flags:
`)
		fs.PrintDefaults()
	}
	fs.Uint64Var(&f.seed, "seed", 0, "run this one seed and print its summary")
	fs.IntVar(&f.seeds, "seeds", 0, "sweep this many seeds, from --first on")
	fs.Uint64Var(&f.first, "first", 1, "the first seed of a sweep")
	fs.IntVar(&f.workers, "workers", runtime.GOMAXPROCS(0), "runs of a sweep at once")
	fs.BoolVar(&f.heal, "heal", false, "with --seeds: measure heal times instead (sim.HealTime: a unit crash, a sequencer crash, a partitioned unit and a paused unit, each on every seed) and print their p50 and p99")
	fs.BoolVar(&f.progress, "progress", true, "show a progress line on stderr during a sweep")
	fs.StringVar(&f.sc.Faults, "faults", "", "kinds of fault to inject, separated by commas, or all, or none (default: as the seed chooses); kinds: "+sim.KindList())
	fs.StringVar(&f.sc.Disk, "disk", "", "where the cluster keeps its state: memory (in-memory units and roles) or durable (the durable unit and role state on simulated disks, which take the disk faults) (default: as the seed chooses, durable one seed in four)")
	fs.StringVar(&f.sc.Async, "async", "", "append in bursts through AppendAsync's batches (on) or one Append at a time (off) (default: as the seed chooses, bursts two seeds in three)")
	fs.StringVar(&f.sc.Detector, "detector", "", "heal with a failure detector (on) or a hand-driven reconfiguring client (off) (default: as the seed chooses, the detector one seed in two)")
	fs.StringVar(&f.sc.Latency, "latency", "", "one-way latency of the healthy network, a constant model such as constant:2ms (default: as the seed chooses)")
	fs.StringVar(&f.sc.FaultLatency, "fault-latency", "", "latency model of the fault phase, as sim.ParseLatency reads it: cloud, study, bimodal, exp:min=5ms,mean=50ms, ... (turns the latency fault on)")
	fs.DurationVar(&f.sc.Duration, "duration", 0, "length of the fault phase in virtual time; 0 for none (default: as the seed chooses)")
	fs.StringVar(&f.trace, "trace", "", "with --seed: write an HTML timeline of the run to this file")
	fs.DurationVar(&f.traceFrom, "trace-from", 0, "start of the timeline's window, in virtual time since the run started")
	fs.DurationVar(&f.traceUntil, "trace-until", 0, "end of the timeline's window (default: the end of the run)")
	fs.IntVar(&f.traceMax, "trace-max", sim.DefaultTimelineItems, "most operations, messages and marks the timeline draws")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	f.sc.SetDuration = set["duration"]
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case set["seed"] == set["seeds"]:
		return nil, errors.New("give exactly one of --seed and --seeds")
	case set["seed"] && f.seed == 0:
		return nil, errors.New("--seed must be positive")
	case set["seeds"] && f.seeds <= 0:
		return nil, errors.New("--seeds must be positive")
	case f.trace != "" && !set["seed"]:
		return nil, errors.New("--trace draws one run: use it with --seed")
	case f.workers <= 0:
		return nil, errors.New("--workers must be positive")
	}
	if err := f.sc.Check(); err != nil {
		var se *sim.ScenarioError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("--%s: %w", se.Field, se.Err)
		}
		return nil, err
	}
	return f, nil
}

// replay returns the command that replays seed with the same scenario.
func (f *simFlags) replay(seed uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "go run ./cmd/corfu sim --seed %d", seed)
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, name := range scenarioFlags {
		if set[name] {
			fmt.Fprintf(&b, " --%s %s", name, shellQuote(f.fs.Lookup(name).Value.String()))
		}
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell if it needs quoting.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-+=.,:/@%", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// simCmd runs "corfu sim": one seed (--seed) or a sweep (--seeds). It
// returns the process's exit status: 0 if every run passed, 1 if one
// failed, 2 for bad flags.
func simCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseSimFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "corfu sim: %v\n", err)
			fmt.Fprintln(stderr, "run 'corfu sim -h' for the flags")
			return 2
		}
		return 0
	}
	if f.seeds > 0 && f.heal {
		return f.healTable(stdout, stderr)
	}
	if f.seeds > 0 {
		return f.sweep(stdout, stderr)
	}
	return f.one(stdout, stderr)
}

// one runs a single seed and prints its summary.
func (f *simFlags) one(stdout, stderr io.Writer) int {
	o := f.sc.Options(f.seed)
	var events []sim.Event
	if f.trace != "" {
		o.Trace = func(e sim.Event) { events = append(events, e) }
	}
	wall := time.Now()
	res := sim.Run(o)
	elapsed := time.Since(wall)
	o.Trace = nil
	r := sim.Summarize(o, res)

	fmt.Fprintf(stdout, "corfu sim: seed %d\n", f.seed)
	printTotals(stdout, r.Ops, r.Appends, r.Reads, r.FailedOps, r.Faults)
	if res.Heal > 0 {
		fmt.Fprintf(stdout, "fault phase:  0s to %v, then healed\n", res.Heal)
	}
	printViolations(stdout, r.Violations, len(r.Violations)-r.Warnings(), r.Warnings())
	fmt.Fprintf(stdout, "linearizable: %s\n", linVerdict(res.Linearizability))
	fmt.Fprintf(stdout, "newest epoch: %d\n", r.Epochs)
	fmt.Fprintf(stdout, "events:       %d\n", r.Steps)
	fmt.Fprintf(stdout, "virtual time: %v\n", r.VirtualTime)
	fmt.Fprintf(stdout, "trace hash:   %016x\n", r.TraceHash)
	status := 0
	if f.trace != "" {
		if err := f.writeTrace(stdout, o, res, events); err != nil {
			fmt.Fprintf(stderr, "corfu sim: %v\n", err)
			status = 1
		}
	}
	fmt.Fprintf(stdout, "wall time:    %v\n", elapsed.Round(time.Millisecond))
	if !r.Passed() {
		fmt.Fprintf(stdout, "FAIL seed %d: %v\n", r.Seed, r.Err)
		printFailure(stdout, f, r, "")
		if len(res.Faults) > 0 {
			fmt.Fprintln(stdout, "fault log:")
			for i, fr := range res.Faults {
				if i == maxFaultLog {
					fmt.Fprintf(stdout, "  ... and %d more (see the timeline: --trace)\n", len(res.Faults)-maxFaultLog)
					break
				}
				fmt.Fprintf(stdout, "  %v\n", fr)
			}
		}
		return 1
	}
	fmt.Fprintln(stdout, "PASS")
	return status
}

// writeTrace writes the run's timeline, and porcupine's drawing of the
// history beside it if the history is not linearizable.
func (f *simFlags) writeTrace(stdout io.Writer, o sim.Options, res sim.Result, events []sim.Event) error {
	file, err := os.Create(f.trace)
	if err != nil {
		return err
	}
	err = sim.WriteTimeline(file, res, events, sim.TimelineOptions{
		Title:    fmt.Sprintf("corfu sim --seed %d", o.Seed),
		Run:      &o,
		From:     f.traceFrom,
		Until:    f.traceUntil,
		MaxItems: f.traceMax,
	})
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	fmt.Fprintf(stdout, "timeline:     %s\n", f.trace)
	if res.Linearizability.Result == porcupine.Illegal {
		path := strings.TrimSuffix(f.trace, ".html") + ".porcupine.html"
		if err := porcupine.VisualizePath(sim.LogModel(), res.Linearizability.Info, path); err != nil {
			return fmt.Errorf("porcupine visualization: %w", err)
		}
		fmt.Fprintf(stdout, "porcupine:    %s\n", path)
	}
	return nil
}

// sweep runs seeds first..first+seeds-1 and prints a summary, then each
// failing seed.
func (f *simFlags) sweep(stdout, stderr io.Writer) int {
	seeds := sim.Seeds(f.first, f.seeds)
	var p *progressLine
	if f.progress {
		p = &progressLine{w: stderr, start: time.Now()}
	}
	wall := time.Now()
	res := sim.Sweep(seeds, f.workers, f.sc.Options, p.update)
	elapsed := time.Since(wall)
	p.finish()
	return f.printSweep(stdout, res, elapsed)
}

// printSweep prints a sweep's summary, then each failing seed, and returns
// the exit status.
func (f *simFlags) printSweep(w io.Writer, res sim.SweepResult, elapsed time.Duration) int {
	t := res.Total
	if t.Runs == 0 {
		fmt.Fprintln(w, "corfu sim: no seeds")
		return 0
	}
	fmt.Fprintf(w, "corfu sim: seeds %d..%d\n", res.Runs[0].Seed, res.Runs[len(res.Runs)-1].Seed)
	fmt.Fprintf(w, "runs:         %d passed, %d failed\n", t.Runs-t.FailedRuns, t.FailedRuns)
	printTotals(w, t.Ops, t.Appends, t.Reads, t.FailedOps, t.Faults)
	fmt.Fprintf(w, "violations:   %d (%d warnings)\n", t.Violations, t.Warnings)
	fmt.Fprintf(w, "events:       %d\n", t.Steps)
	fmt.Fprintf(w, "virtual time: %v in all, %v per run\n",
		t.VirtualTime.Round(time.Millisecond), (t.VirtualTime / time.Duration(t.Runs)).Round(time.Millisecond))
	fmt.Fprintf(w, "wall time:    %v on %d workers, %.0f runs/s\n",
		elapsed.Round(time.Millisecond), min(f.workers, t.Runs), float64(t.Runs)/max(elapsed.Seconds(), 1e-9))
	if t.FailedRuns == 0 {
		fmt.Fprintln(w, "PASS")
		return 0
	}
	for i, r := range res.Failures() {
		if i == maxReported {
			fmt.Fprintf(w, "\n... and %d more failing seeds\n", t.FailedRuns-maxReported)
			break
		}
		first, rest, _ := strings.Cut(r.Err.Error(), "\n")
		if rest != "" {
			first += " (more with --seed)"
		}
		fmt.Fprintf(w, "\nFAIL seed %d: %s\n", r.Seed, first)
		printFailure(w, f, r, "  ")
	}
	fmt.Fprintf(w, "\nfailing seeds: %s\n", joinSeeds(res.FailedSeeds))
	fmt.Fprintln(w, "FAIL")
	return 1
}

// printTotals prints the operation and fault lines of a summary.
func printTotals(w io.Writer, ops, appends, reads, failed int, faults map[string]int) {
	fmt.Fprintf(w, "operations:   %d (%d appends acknowledged, %d reads returned an entry or junk, %d failed)\n",
		ops, appends, reads, failed)
	fmt.Fprintf(w, "faults:       %s\n", faultLine(faults))
}

// faultLine formats fault counts by kind, in kind order.
func faultLine(faults map[string]int) string {
	if len(faults) == 0 {
		return "none injected"
	}
	kinds := make([]string, 0, len(faults))
	total := 0
	for k, n := range faults {
		kinds = append(kinds, k)
		total += n
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, faults[k])
	}
	return fmt.Sprintf("%d injected: %s", total, strings.Join(parts, ", "))
}

// printViolations prints the violations line of one run and lists them.
func printViolations(w io.Writer, vs []sim.Violation, violations, warnings int) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "violations:   none")
		return
	}
	fmt.Fprintf(w, "violations:   %d (%d warnings)\n", violations, warnings)
	for i, v := range vs {
		if i == maxViolations {
			fmt.Fprintf(w, "  ... and %d more\n", len(vs)-maxViolations)
			break
		}
		fmt.Fprintf(w, "  %v\n", v)
	}
}

// printFailure prints what a failing run needs to be understood and
// replayed: its options in full, its violations and the replay command.
func printFailure(w io.Writer, f *simFlags, r sim.SeedResult, indent string) {
	o := r.Options
	o.Trace = nil
	fmt.Fprintf(w, "%soptions:      %+v\n", indent, o)
	if indent != "" { // a single run listed its violations already
		for i, v := range r.Violations {
			if i == maxViolations {
				fmt.Fprintf(w, "%s  ... and %d more\n", indent, len(r.Violations)-maxViolations)
				break
			}
			fmt.Fprintf(w, "%s  %v\n", indent, v)
		}
	}
	fmt.Fprintf(w, "%sreplay:       %s\n", indent, f.replay(r.Seed))
}

// linVerdict describes the linearizability check of one run.
func linVerdict(l sim.LinearizabilityResult) string {
	switch l.Result {
	case porcupine.Ok:
		return fmt.Sprintf("yes (%d register operations on %d addresses)", l.Ops, l.Addrs)
	case porcupine.Illegal:
		return fmt.Sprintf("NO, at addresses %v", l.Illegal)
	}
	return "unknown (the check timed out)"
}

// joinSeeds formats seeds as a space-separated list.
func joinSeeds(seeds []uint64) string {
	parts := make([]string, len(seeds))
	for i, s := range seeds {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, " ")
}

// progressLine rewrites one line of stderr in place as a sweep goes, at
// most every progressEvery. A nil *progressLine shows nothing.
type progressLine struct {
	w     io.Writer
	start time.Time

	mu   sync.Mutex
	last time.Time
	text string
}

func (p *progressLine) update(done, total, failed int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	text := fmt.Sprintf("sim: %d/%d runs, %d failed, %v", done, total, failed, elapsed.Round(100*time.Millisecond))
	if done < total && done > 0 {
		if left := time.Duration(float64(elapsed) / float64(done) * float64(total-done)); left >= time.Second {
			text += fmt.Sprintf(", about %v left", left.Round(time.Second))
		}
	}
	// Pad to erase a longer line written before.
	pad := max(len(p.text)-len(text), 0)
	fmt.Fprintf(p.w, "\r%s%s", text, strings.Repeat(" ", pad))
	p.text = text
}

// finish ends the progress line.
func (p *progressLine) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.text != "" {
		fmt.Fprintln(p.w)
	}
}
