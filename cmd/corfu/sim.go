package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
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

// scenario is what the flags change on top of Swarm(seed). Every run of a
// sweep, and the replay of any of them, applies the same scenario.
type scenario struct {
	faults       string        // --faults: "", "none", "all" or a comma-separated list of kinds
	latency      string        // --latency: a sim.ParseLatency spec of a constant model, or ""
	faultLatency string        // --fault-latency: a sim.ParseLatency spec for the fault phase, or ""
	duration     time.Duration // --duration: the fault phase
	setDuration  bool          // --duration was given
	disk         string        // --disk: "", sim.DiskMemory or sim.DiskDurable
	detector     string        // --detector: "", "on" or "off"
	async        string        // --async: "", "on" or "off"

	kinds map[sim.FaultKind]bool // the kinds --faults names, once checked
}

// check validates the scenario once, before any run, so that a bad flag is
// a usage error rather than a failure of every seed.
func (sc *scenario) check() error {
	if sc.latency != "" {
		m, err := sim.ParseLatency(sc.latency, nil)
		if err != nil {
			return fmt.Errorf("--latency: %w", err)
		}
		// NB: sim.Options carries the healthy network's latency as one
		// constant; models with a distribution apply to the fault phase.
		if _, ok := m.(sim.Constant); !ok {
			return fmt.Errorf("--latency %s: the healthy network's latency is a constant (such as constant:2ms); give other models to --fault-latency", sc.latency)
		}
	}
	if sc.faultLatency != "" {
		if _, err := sim.ParseLatency(sc.faultLatency, func() time.Duration { return 0 }); err != nil {
			return fmt.Errorf("--fault-latency: %w", err)
		}
	}
	if sc.duration < 0 {
		return errors.New("--duration must not be negative")
	}
	switch sc.disk {
	case "", sim.DiskMemory, sim.DiskDurable:
	default:
		return fmt.Errorf("--disk %q: want %s or %s", sc.disk, sim.DiskMemory, sim.DiskDurable)
	}
	switch sc.detector {
	case "", "on", "off":
	default:
		return fmt.Errorf("--detector %q: want on or off", sc.detector)
	}
	switch sc.async {
	case "", "on", "off":
	default:
		return fmt.Errorf("--async %q: want on or off", sc.async)
	}
	switch sc.faults {
	case "":
	case "none":
		sc.kinds = map[sim.FaultKind]bool{}
	case "all":
		// NB: every kind, and the disk faults Swarm draws (durable runs
		// only; see sim.SwarmDiskKinds).
		sc.kinds = sim.SwarmDiskKinds()
		for _, k := range sim.FaultKinds() {
			sc.kinds[k] = true
		}
	default:
		sc.kinds = map[sim.FaultKind]bool{}
		for _, name := range strings.Split(sc.faults, ",") {
			k := sim.FaultKind(strings.TrimSpace(name))
			if !slices.Contains(sim.FaultKinds(), k) && !slices.Contains(sim.DiskFaultKinds(), k) {
				return fmt.Errorf("--faults: unknown kind %q; want all, none, or some of %s", k, kindList())
			}
			sc.kinds[k] = true
		}
	}
	return nil
}

// options returns the options of one run: Swarm(seed), then the flags.
// The scenario must have been checked.
func (sc *scenario) options(seed uint64) sim.Options {
	o := sim.Swarm(seed)
	swarm := o
	if sc.latency != "" {
		m, _ := sim.ParseLatency(sc.latency, nil)
		o.Latency = time.Duration(m.(sim.Constant))
	}
	if sc.disk != "" {
		o.Disk = sc.disk
	}
	if sc.detector != "" {
		sim.UseDetector(&o, sc.detector == "on")
	}
	switch w := &o.Workload; {
	case sc.async == "off":
		w.Bursts = 0
	case sc.async == "on" && w.Bursts == 0:
		w.Bursts, w.MaxBurst = 2, 8
	}
	if sc.kinds != nil {
		applyFaults(&o, sc.kinds)
		sim.ApplyDiskFaults(&o, sc.kinds)
	}
	if sc.faultLatency != "" {
		o.Faults.Latency = sc.faultLatency
		if o.Faults.Duration == 0 {
			o.Faults.Duration = drawFaults(seed).duration
		}
	}
	if sc.setDuration {
		f := &o.Faults
		if f.Duration > 0 && f.ClogMean > 0 {
			f.ClogMean = f.ClogMean * sc.duration / f.Duration
		}
		f.Duration = sc.duration
	}
	if o.Faults.Duration != swarm.Faults.Duration || o.Workload.Reconfigs != swarm.Workload.Reconfigs {
		spread(&o)
	}
	if o.Workload.Reconfigs != swarm.Workload.Reconfigs {
		// The bound on epoch changes counts the clients, the reconfiguring
		// one included: let Expanded derive it again.
		o.Liveness.MaxEpochChanges = 0
	}
	return o.Expanded()
}

// faultDraws are the rates and counts a kind of fault gets when --faults
// turns it on in a seed whose Swarm options left it out. They are drawn
// from the seed, all of them whatever the kinds chosen, so that one kind's
// presence never shifts another's draws.
type faultDraws struct {
	duration           time.Duration
	latency            string
	drop, dup, reorder float64
	late               time.Duration
	counts             []int // in the order of countFields
	reconfigs          int
}

func drawFaults(seed uint64) faultDraws {
	r := rand.New(rand.NewPCG(seed, 0xfa017))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond }
	d := faultDraws{duration: ms(1000, 6000)}
	d.latency = []string{
		"bimodal",
		fmt.Sprintf("exp:min=%dms,mean=%dms", r.IntN(31), 30+r.IntN(71)),
		"study",
		fmt.Sprintf("cloud+outage:%v-%v", d.duration/4, d.duration/2),
	}[r.IntN(4)]
	d.drop = 0.3 * r.Float64()
	d.dup, d.late = 0.5*r.Float64(), ms(10, 2000)
	d.reorder = 0.2 * r.Float64()
	for range countKinds[:len(countKinds)-1] {
		d.counts = append(d.counts, 1+r.IntN(3))
	}
	d.reconfigs = 1 + r.IntN(3)
	// NB: kinds added since draw from a stream of their own, so that the
	// draws above stay what they were.
	d.counts = append(d.counts, 1+rand.New(rand.NewPCG(seed, 0xa3e51a)).IntN(2))
	return d
}

// countKinds are the kinds of fault a FaultConfig counts in windows, in the
// order of countFields.
var countKinds = []sim.FaultKind{
	sim.FaultClog, sim.FaultSwizzle, sim.FaultPartition, sim.FaultAsymmetric, sim.FaultBridge, sim.FaultFlap,
	sim.FaultBlackout, sim.FaultOutage, sim.FaultPause, sim.FaultCrash, sim.FaultClock, sim.FaultReformat,
	sim.FaultAmnesia,
}

func countFields(f *sim.FaultConfig) []*int {
	return []*int{&f.Clogs, &f.Swizzles, &f.Partitions, &f.Asymmetric, &f.Bridges, &f.Flaps,
		&f.Blackouts, &f.Outages, &f.Pauses, &f.Crashes, &f.Clocks, &f.Reformats, &f.Amnesias}
}

// applyFaults makes o inject exactly the kinds of fault in on: a kind the
// seed chose keeps its rate or count, a kind it left out gets one drawn
// from the seed, and the kinds not in on are switched off. Without any
// kind but reconfig, the run has no fault phase.
func applyFaults(o *sim.Options, on map[sim.FaultKind]bool) {
	d := drawFaults(o.Seed)
	f := &o.Faults
	rate := func(k sim.FaultKind, v *float64, drawn float64) {
		switch {
		case !on[k]:
			*v = 0
		case *v == 0:
			*v = drawn
		}
	}
	if !on[sim.FaultLatency] {
		f.Latency = ""
	} else if f.Latency == "" {
		f.Latency = d.latency
	}
	rate(sim.FaultDrop, &f.Drop, d.drop)
	rate(sim.FaultDuplicate, &f.Duplicate, d.dup)
	if f.Duplicate == 0 {
		f.DuplicateLate = 0
	} else if f.DuplicateLate == 0 {
		f.DuplicateLate = d.late
	}
	rate(sim.FaultReorder, &f.Reorder, d.reorder)
	for i, c := range countFields(f) {
		switch {
		case !on[countKinds[i]]:
			*c = 0
		case *c == 0:
			*c = d.counts[i]
		}
	}
	f.Blackouts = min(f.Blackouts, 1) // as Swarm: one node silenced for most of the phase
	w := &o.Workload
	switch {
	case !on[sim.FaultReconfig]:
		w.Reconfigs = 0
	case w.Reconfigs == 0:
		w.Reconfigs = d.reconfigs
	}
	injected := false
	for k := range on {
		injected = injected || k != sim.FaultReconfig
	}
	switch {
	case !injected:
		*f = sim.FaultConfig{}
	case f.Duration == 0:
		f.Duration = d.duration
	}
}

// spread paces the workload over the fault phase as Swarm does, for
// options whose fault phase or reconfigurations the flags changed.
func spread(o *sim.Options) {
	w := &o.Workload
	w.Think = 5 * time.Millisecond
	w.ReconfigGap = 0 // the default, filled in by Expanded
	if d := o.Faults.Duration; d > 0 {
		n := max(w.Appends, w.Reads, 1)
		w.Think = max(w.Think, 2*d/time.Duration(n))
		w.ReconfigGap = 2 * d / time.Duration(w.Reconfigs+1)
	}
}

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
	sc         scenario
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
	fs.StringVar(&f.sc.faults, "faults", "", "kinds of fault to inject, separated by commas, or all, or none (default: as the seed chooses); kinds: "+kindList())
	fs.StringVar(&f.sc.disk, "disk", "", "where the cluster keeps its state: memory (in-memory units and roles) or durable (the durable unit and role state on simulated disks, which take the disk faults) (default: as the seed chooses, durable one seed in four)")
	fs.StringVar(&f.sc.async, "async", "", "append in bursts through AppendAsync's batches (on) or one Append at a time (off) (default: as the seed chooses, bursts two seeds in three)")
	fs.StringVar(&f.sc.detector, "detector", "", "heal with a failure detector (on) or a hand-driven reconfiguring client (off) (default: as the seed chooses, the detector one seed in two)")
	fs.StringVar(&f.sc.latency, "latency", "", "one-way latency of the healthy network, a constant model such as constant:2ms (default: as the seed chooses)")
	fs.StringVar(&f.sc.faultLatency, "fault-latency", "", "latency model of the fault phase, as sim.ParseLatency reads it: cloud, study, bimodal, exp:min=5ms,mean=50ms, ... (turns the latency fault on)")
	fs.DurationVar(&f.sc.duration, "duration", 0, "length of the fault phase in virtual time; 0 for none (default: as the seed chooses)")
	fs.StringVar(&f.trace, "trace", "", "with --seed: write an HTML timeline of the run to this file")
	fs.DurationVar(&f.traceFrom, "trace-from", 0, "start of the timeline's window, in virtual time since the run started")
	fs.DurationVar(&f.traceUntil, "trace-until", 0, "end of the timeline's window (default: the end of the run)")
	fs.IntVar(&f.traceMax, "trace-max", sim.DefaultTimelineItems, "most operations, messages and marks the timeline draws")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	f.sc.setDuration = set["duration"]
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
	if err := f.sc.check(); err != nil {
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

// kindList names the kinds of fault, separated by commas: the disk faults
// (durable runs only) last.
func kindList() string {
	var names []string
	for _, k := range append(sim.FaultKinds(), sim.DiskFaultKinds()...) {
		names = append(names, string(k))
	}
	return strings.Join(names, ",")
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
	o := f.sc.options(f.seed)
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
	res := sim.Sweep(seeds, f.workers, f.sc.options, p.update)
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
