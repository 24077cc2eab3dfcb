package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
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
