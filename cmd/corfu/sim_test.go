package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
)

// runCmd runs the command line in process and returns its exit status and
// output.
func runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// wallRE matches the one line of a summary that may differ between two
// runs of the same seeds.
var wallRE = regexp.MustCompile(`(?m)^wall time: .*\n`)

func withoutWall(s string) string { return wallRE.ReplaceAllString(s, "") }

// TestSimSeedDeterministic runs one seed twice: everything but the wall
// time must be the same.
func TestSimSeedDeterministic(t *testing.T) {
	for _, seed := range []string{"7", "12"} {
		code1, out1, _ := runCmd("sim", "--seed", seed)
		code2, out2, _ := runCmd("sim", "--seed", seed)
		assert.Equal(t, code1, code2, "seed %s: exit status", seed)
		assert.Equal(t, 1, len(wallRE.FindAllString(out1, -1)), "one wall time line")
		assert.Equal(t, withoutWall(out1), withoutWall(out2), "seed %s: output", seed)
		assert.Contains(t, out1, "corfu sim: seed "+seed+"\n")
		assert.Contains(t, out1, "trace hash:   ")
		assert.Contains(t, out1, "operations:   ")
		assert.Contains(t, out1, "faults:       ")
	}
}

func TestSimSeedPasses(t *testing.T) {
	code, out, stderr := runCmd("sim", "--seed", "3", "--faults", "none", "--latency", "constant:2ms")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, stderr)
	assert.True(t, strings.HasSuffix(out, "PASS\n"), out)
	assert.Contains(t, out, "violations:   none\n")
	assert.Contains(t, out, "linearizable: yes")
	assert.Empty(t, stderr)
}

// TestSimSweepDeterministic checks that a sweep prints the same whatever
// the number of workers.
func TestSimSweepDeterministic(t *testing.T) {
	code1, out1, err1 := runCmd("sim", "--seeds", "16", "--workers", "1", "--progress=false")
	code4, out4, _ := runCmd("sim", "--seeds", "16", "--workers", "4", "--progress=false")
	assert.Equal(t, code1, code4)
	assert.Equal(t, withoutWall(out1), withoutWall(out4))
	assert.Contains(t, out1, "corfu sim: seeds 1..16\n")
	assert.Contains(t, out1, "runs:         ")
	assert.Empty(t, err1, "no progress line with --progress=false")
	assert.Regexp(t, `(?m)^wall time: +\S+ on 1 workers`, out1)
	assert.Regexp(t, `(?m)^wall time: +\S+ on 4 workers`, out4)
}

func TestSimSweepProgress(t *testing.T) {
	_, _, stderr := runCmd("sim", "--seeds", "4", "--first", "100", "--faults", "none")
	assert.True(t, strings.HasPrefix(stderr, "\rsim: "), "%q", stderr)
	assert.Contains(t, stderr, "sim: 4/4 runs, 0 failed")
	assert.True(t, strings.HasSuffix(stderr, "\n"), "the line ends once the sweep is done")
}

func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b, start: time.Now()}
	p.update(1, 1000, 0)
	p.update(2, 1000, 0) // throttled
	p.update(1000, 1000, 3)
	p.finish()
	lines := strings.Split(b.String(), "\r")
	require.Len(t, lines, 3, "%q", b.String())
	assert.True(t, strings.HasPrefix(lines[1], "sim: 1/1000 runs, 0 failed"))
	assert.True(t, strings.HasPrefix(lines[2], "sim: 1000/1000 runs, 3 failed"))
	assert.True(t, strings.HasSuffix(b.String(), "\n"))

	var nilLine *progressLine
	nilLine.update(1, 2, 0) // no output, no panic
	nilLine.finish()
}

func TestSimTrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed5.html")
	code, out, stderr := runCmd("sim", "--seed", "5", "--trace", path)
	assert.Contains(t, []int{0, 1}, code, stderr)
	assert.Contains(t, out, "timeline:     "+path+"\n")
	page, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(page, []byte("<!DOCTYPE html>")))
	assert.Contains(t, string(page), "<svg")
	assert.Contains(t, string(page), "corfu sim --seed 5")

	// The trace does not change the run.
	_, plain, _ := runCmd("sim", "--seed", "5")
	assert.Equal(t, withoutWall(plain), strings.Replace(withoutWall(out), "timeline:     "+path+"\n", "", 1))
}

func TestSimBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no seed", args: nil, want: "exactly one of --seed and --seeds"},
		{name: "both", args: []string{"--seed", "1", "--seeds", "2"}, want: "exactly one of --seed and --seeds"},
		{name: "zero seed", args: []string{"--seed", "0"}, want: "--seed must be positive"},
		{name: "no seeds", args: []string{"--seeds", "0"}, want: "--seeds must be positive"},
		{name: "trace of a sweep", args: []string{"--seeds", "3", "--trace", "x.html"}, want: "use it with --seed"},
		{name: "bad latency", args: []string{"--seed", "1", "--latency", "warp:9"}, want: "--latency"},
		{name: "latency not constant", args: []string{"--seed", "1", "--latency", "cloud"}, want: "give other models to the fault phase"},
		{name: "bad fault latency", args: []string{"--seed", "1", "--fault-latency", "warp:9"}, want: "--fault-latency"},
		{name: "unknown fault", args: []string{"--seed", "1", "--faults", "crash,meteor"}, want: `unknown kind "meteor"`},
		{name: "negative duration", args: []string{"--seed", "1", "--duration", "-1s"}, want: "--duration: must not be negative"},
		{name: "bad workers", args: []string{"--seeds", "3", "--workers", "0"}, want: "--workers must be positive"},
		{name: "stray argument", args: []string{"--seed", "1", "extra"}, want: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--seed", "1", "--colour"}, want: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runCmd(append([]string{"sim"}, tt.args...)...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Contains(t, stderr, tt.want)
		})
	}
}

func TestSimHelp(t *testing.T) {
	code, _, stderr := runCmd("sim", "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "usage: corfu sim --seed N")
	assert.Contains(t, stderr, "-trace")
}

func TestSimReplayCommand(t *testing.T) {
	f, err := parseSimFlags([]string{"--seeds", "5", "--workers", "3", "--latency", "constant:2ms", "--faults", "none"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "go run ./cmd/corfu sim --seed 17 --faults none --latency constant:2ms", f.replay(17))

	f, err = parseSimFlags([]string{"--seed", "4"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "go run ./cmd/corfu sim --seed 4", f.replay(4))

	assert.Equal(t, "cloud+outage:10m-2h10m", shellQuote("cloud+outage:10m-2h10m"))
	assert.Equal(t, `'a b'`, shellQuote("a b"))
	assert.Equal(t, `'it'\''s'`, shellQuote("it's"))
	assert.Equal(t, `''`, shellQuote(""))
}

// TestSimSweepFailureReport checks what a failing sweep prints: each
// failing seed with its options, violations and replay command, and the
// list of failing seeds.
func TestSimSweepFailureReport(t *testing.T) {
	f, err := parseSimFlags([]string{"--seeds", "3", "--latency", "constant:3ms"}, io.Discard)
	require.NoError(t, err)
	bad := sim.Swarm(2)
	bad.Trace = func(sim.Event) {} // must not be printed: its address varies
	res := sim.SweepResult{
		Runs: []sim.SeedResult{
			{Seed: 1, Ops: 10, Appends: 4},
			{Seed: 2, Options: bad, Err: errors.New("sim: invariant violated: S3 violation at address 4: lost\nsecond line"),
				Violations: []sim.Violation{{Invariant: "S3", Addr: 4, Detail: "lost"}, {Invariant: "S5", Addr: 6, Detail: "twice", Warning: true}}},
			{Seed: 3, Ops: 7},
		},
		FailedSeeds: []uint64{2},
		Total:       sim.SweepTotals{Runs: 3, FailedRuns: 1, Ops: 17, Appends: 4, Violations: 1, Warnings: 1},
	}
	var b bytes.Buffer
	code := f.printSweep(&b, res, 1500*time.Millisecond)
	out := b.String()
	assert.Equal(t, 1, code)
	for _, want := range []string{
		"corfu sim: seeds 1..3\n",
		"runs:         2 passed, 1 failed\n",
		"violations:   1 (1 warnings)\n",
		"FAIL seed 2: sim: invariant violated: S3 violation at address 4: lost (more with --seed)\n",
		"  options:      {Seed:2 ",
		"    S3 violation at address 4: lost\n",
		"    S5 warning at address 6: twice\n",
		"  replay:       go run ./cmd/corfu sim --seed 2 --latency constant:3ms\n",
		"failing seeds: 2\n",
	} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, out, "Trace:<nil>")
	assert.True(t, strings.HasSuffix(out, "FAIL\n"))
}

// scenarioFor parses flags and returns their scenario.
func scenarioFor(t *testing.T, args ...string) *sim.Scenario {
	t.Helper()
	f, err := parseSimFlags(append([]string{"--seeds", "1"}, args...), io.Discard)
	require.NoError(t, err)
	return &f.sc
}

func TestScenarioDefaultIsSwarm(t *testing.T) {
	sc := scenarioFor(t)
	for seed := uint64(1); seed <= 30; seed++ {
		require.Equal(t, sim.Swarm(seed), sc.Options(seed))
	}
}

func TestScenarioFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults string
		want   []sim.FaultKind
	}{
		{name: "none", faults: "none"},
		{name: "one kind", faults: "crash", want: []sim.FaultKind{sim.FaultCrash}},
		{name: "a list", faults: "drop,partition,latency", want: []sim.FaultKind{sim.FaultDrop, sim.FaultPartition, sim.FaultLatency}},
		{name: "all", faults: "all", want: sim.FaultKinds()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenarioFor(t, "--faults", tt.faults)
			want := map[sim.FaultKind]bool{}
			for _, k := range tt.want {
				if k != sim.FaultReconfig {
					want[k] = true
				}
			}
			for seed := uint64(1); seed <= 30; seed++ {
				o := sc.Options(seed)
				swarm := sim.Swarm(seed)
				assert.Equal(t, want, sim.Injected(o), "seed %d", seed)
				if len(want) == 0 {
					assert.Equal(t, sim.FaultConfig{}, o.Faults, "seed %d: no fault phase", seed)
				}
				assert.Equal(t, slices.Contains(tt.want, sim.FaultReconfig), o.Workload.Reconfigs > 0, "seed %d: reconfigurations", seed)
				if swarm.Faults.Crashes > 0 && want[sim.FaultCrash] {
					assert.Equal(t, swarm.Faults.Crashes, o.Faults.Crashes, "seed %d keeps the crashes it chose", seed)
				}
				assert.Equal(t, swarm.Cluster, o.Cluster, "the cluster is the seed's")
				assert.Equal(t, o, sc.Options(seed), "seed %d: deterministic", seed)
			}
		})
	}
}

func TestScenarioDuration(t *testing.T) {
	sc := scenarioFor(t, "--duration", "2s", "--faults", "crash,clog")
	for seed := uint64(1); seed <= 10; seed++ {
		o := sc.Options(seed)
		assert.Equal(t, 2*time.Second, o.Faults.Duration)
		n := max(o.Workload.Appends, o.Workload.Reads)
		assert.Equal(t, max(5*time.Millisecond, 4*time.Second/time.Duration(n)), o.Workload.Think, "the workload spans the fault phase")
	}
	o := scenarioFor(t, "--duration", "0").Options(3)
	assert.Zero(t, o.Faults.Duration, "--duration 0: no fault phase")

	o = scenarioFor(t, "--fault-latency", "bimodal", "--latency", "constant:3ms").Options(3)
	assert.Equal(t, "bimodal", o.Faults.Latency)
	assert.Equal(t, 3*time.Millisecond, o.Latency)
	assert.Positive(t, o.Faults.Duration)
}

func TestSimFaultsOutput(t *testing.T) {
	code, out, stderr := runCmd("sim", "--seed", "7", "--faults", "crash", "--duration", "2s")
	assert.Contains(t, []int{0, 1}, code, stderr)
	assert.Regexp(t, `(?m)^faults: +\d+ injected: crash \d+(, reconfig \d+)?$`, out) // reconfig: the detector's
	if code == 1 {
		assert.Contains(t, out, "replay:       go run ./cmd/corfu sim --seed 7 --faults crash --duration 2s\n")
	}
}

// TestSimTracePorcupine checks that a history that is not linearizable
// also gets porcupine's drawing, beside the timeline.
func TestSimTracePorcupine(t *testing.T) {
	h := &sim.History{}
	id := h.Invoke(1, sim.OpAppend, 0, 0, "a")
	h.Return(id, 10*time.Millisecond, 0, "", sim.OK, nil)
	id = h.Invoke(2, sim.OpRead, 20*time.Millisecond, 0, "")
	h.Return(id, 30*time.Millisecond, 0, "b", sim.OK, nil)
	lin := sim.CheckLinearizable(h, 0)
	require.Equal(t, []storage.Address{0}, lin.Illegal)
	res := sim.Result{Err: errors.New("sim: invariant violated: Lin"), History: h, Linearizability: lin, VirtualTime: 40 * time.Millisecond}

	dir := t.TempDir()
	f, err := parseSimFlags([]string{"--seed", "9", "--trace", filepath.Join(dir, "run.html")}, io.Discard)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, f.writeTrace(&out, sim.Swarm(9), res, nil))
	assert.Equal(t, "timeline:     "+filepath.Join(dir, "run.html")+"\nporcupine:    "+filepath.Join(dir, "run.porcupine.html")+"\n", out.String())
	page, err := os.ReadFile(filepath.Join(dir, "run.porcupine.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), "<html")
	timeline, err := os.ReadFile(filepath.Join(dir, "run.html"))
	require.NoError(t, err)
	assert.Contains(t, string(timeline), "NOT linearizable at addresses [0]")
}

func TestScenarioExpanded(t *testing.T) {
	for _, args := range [][]string{nil, {"--faults", "none"}, {"--faults", "reconfig,crash", "--duration", "1s"}} {
		sc := scenarioFor(t, args...)
		for seed := uint64(1); seed <= 20; seed++ {
			o := sc.Options(seed)
			assert.Equal(t, o, o.Expanded(), "%v seed %d: options print in full", args, seed)
			fresh := o
			fresh.Liveness.MaxEpochChanges = 0
			assert.Equal(t, fresh.Expanded().Liveness, o.Liveness, "%v seed %d: liveness bounds fit the clients", args, seed)
		}
	}
}

var flagAllFaults = flag.Int("sim.allfaults", 0, "number of seeds TestSimAllFaults sweeps with every kind of fault (default 2000; 100 with -short)")

// TestSimAllFaults sweeps seeds as corfu sim --faults all does, so that
// every run injects every kind of fault of the catalog at once, beside the
// seed-chosen mixes of sim's TestSim. -sim.allfaults=N sets the number of
// seeds; a failing seed replays with corfu sim --faults all --seed N.
func TestSimAllFaults(t *testing.T) {
	n := *flagAllFaults
	if n == 0 {
		n = 2000
		switch {
		case testing.Short():
			n = 100
		case raceEnabled:
			n = 400
		}
	}
	sc := scenarioFor(t, "--faults", "all")
	res := sim.Sweep(sim.Seeds(1, n), 0, sc.Options, nil)
	for i, r := range res.Failures() {
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(res.FailedSeeds)-5)
			break
		}
		t.Errorf("seed %d: %v\nreproduce: go run ./cmd/corfu sim --faults all --seed %d", r.Seed, r.Err, r.Seed)
	}
	if len(res.FailedSeeds) > 0 {
		t.Errorf("%d of %d seeds failed with every kind of fault: %v", len(res.FailedSeeds), n, res.FailedSeeds)
	}
	for _, k := range sim.FaultKinds() {
		assert.Positive(t, res.Total.Faults[string(k)], "no %s fault in %d seeds", k, n)
	}
}

// regressionSeeds are full-catalog seeds (corfu sim --faults all) that
// once failed, each with the bug its fix closed. They replay exactly, so
// they keep failing if the bug comes back (for as long as sim.Swarm draws
// the same options for them).
var regressionSeeds = map[uint64]string{
	63025497: "L3: a read without a detector spent its retries waiting out its patience on a blank unit",
	63035303: "L3: the same",
	64025352: "L3: the same",
	64010183: "L4: a fill junked a corrupt read on a chain's only replica, an acked entry",
	5094483:  "S7 false positive: a late copy after both replicas ahead were reformatted",
	5138946:  "S13: PrefixTrim reported ErrBeyondTail after trimming some units",
	5220801:  "Lin: a write refused by a seal was taken to have stored nothing",
	5230321:  "Lin: the same, another interleaving",
	5428815:  "S10: a recovery's stream scan wrote before its epoch was agreed",
	11006844: "L1: recoveries that deferred every hole were overtaken one after another",
	11009662: "L1: the same",
	50038612: "L1: a client waiting on a sequencer that restarted after a newer epoch looked for that epoch only once",
	14045225: "L2: every client that met a blank unit reconfigured at once, sealing each epoch under its join",
	52040696: "S10: a durable run's standby sequencer, bootstrapped at the start, came back Recovered at mark 0",
}

// misdirectSeeds are seeds of misdirected writes on durable units (corfu
// sim --faults misdirect,crash,reconfig --disk durable) that once failed.
var misdirectSeeds = map[uint64]string{
	378: "L3, L4, S16: a hand replacement dropped a chain's good replica after a misdirect damaged the other",
	710: "L3: a write that got no further than a damaged head of the open segment blocked its readers",
}

// recoverySeeds are seeds of reads corrupted on their way from the disk
// (corfu sim --faults corrupt,crash,reconfig --disk durable), which act
// while a unit recovers at a restart too, that once failed.
var recoverySeeds = map[uint64]string{
	393: "L3, L4: recovery took a read's flipped bit for a damaged record and marked a synced entry corrupt",
	732: "S16: recovery took a read's flipped bit for a torn tail and dropped a synced entry",
	814: "a unit refused to open: recovery took a read's flipped bit for a damaged segment header",
}

// durableSeeds are full-catalog seeds on durable units with the detector
// on (corfu sim --faults all --disk durable --detector on) that once
// failed.
var durableSeeds = map[uint64]string{
	59003160: "S16: a misdirected write dropped a middle replica's acknowledged record, which no scrub wrote again",
}

// detectorSeeds are full-catalog seeds with the detector on (corfu sim
// --faults all --detector on) that once failed.
var detectorSeeds = map[uint64]string{
	58004402: "L3: a unit came back blank and no detector let it rejoin: the detector's scrub waited on it for a reader's patience",
	58084297: "L3: the same, a reader burning its retries on the blank unit until a client's own patience ran out",
	60030715: "S1 false positive: a record a misdirected write destroyed, missing after the unit recovered, was filled with junk",
	60073960: "S10 false positive: a reader's fill in the new epoch, before a sequencer that lost its state handed the address out again",
}

// asyncSeeds are full-catalog seeds (corfu sim --faults all, bursts of
// AppendAsync as each seed draws them) that once failed.
var asyncSeeds = map[uint64]string{
	63026161:  "S15: a torn commit of a batch failed its writes, and recovery kept the records written before the tear; the checker did not know the unit held them",
	63026990:  "S3: the same, seen as an acked append no replica stored",
	63036705:  "S7: the same, seen as a read of what the chain's tail did not hold",
	133013416: "S1, S6: a reconfiguration's scan junk-filled a head whose damaged disk had lost a record the middle replica held",
}

// TestRegressionSeeds replays regressionSeeds, misdirectSeeds,
// recoverySeeds, durableSeeds, detectorSeeds and asyncSeeds, each as it
// failed: with
// one Append at a time (--async off; they predate AppendAsync), so that
// each replays the interleaving it was kept for.
func TestRegressionSeeds(t *testing.T) {
	for _, set := range []struct {
		args  []string
		seeds map[uint64]string
	}{
		{[]string{"--faults", "all", "--async", "off"}, regressionSeeds},
		{[]string{"--faults", "misdirect,crash,reconfig", "--disk", "durable", "--async", "off"}, misdirectSeeds},
		{[]string{"--faults", "corrupt,crash,reconfig", "--disk", "durable", "--async", "off"}, recoverySeeds},
		{[]string{"--faults", "all", "--disk", "durable", "--detector", "on", "--async", "off"}, durableSeeds},
		{[]string{"--faults", "all", "--detector", "on", "--async", "off"}, detectorSeeds},
		{[]string{"--faults", "all"}, asyncSeeds},
	} {
		sc := scenarioFor(t, set.args...)
		seeds := make([]uint64, 0, len(set.seeds))
		for s := range set.seeds {
			seeds = append(seeds, s)
		}
		slices.Sort(seeds)
		for _, s := range seeds {
			if res := sim.Run(sc.Options(s)); res.Err != nil {
				t.Errorf("seed %d (%s): %v\nreproduce: go run ./cmd/corfu sim %s --seed %d", s, set.seeds[s], res.Err,
					strings.Join(set.args, " "), s)
			}
		}
	}
}
