package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchKeys are the keys every result line starts with, in order.
var benchKeys = []string{"peer", "size", "clients", "appends_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us",
	"window", "inflight", "mean_us", "max_us", "ops", "errors", "elapsed_s", "fsync", "mode", "store"}

// parseBenchLine splits a result line into its keys, in order, and values.
func parseBenchLine(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	var keys []string
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		require.True(t, ok, "field %q of %q is not key=value", f, line)
		require.NotContains(t, kv, k, "key %q twice in %q", k, line)
		keys, kv[k] = append(keys, k), v
	}
	return keys, kv
}

func TestBenchLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		rate string // the fourth key
		want map[string]string
	}{
		{"inproc", []string{"-transport", "inproc", "-store", "memory", "-replicas", "2", "-chains", "2", "-window", "8"}, "appends_per_s",
			map[string]string{"peer": "corfu", "fsync": "off", "store": "memory", "transport": "inproc", "replicas": "2", "chains": "2", "inflight": "8"}},
		{"tcp", []string{"-fsync", "on", "-clients", "2", "-window", "4", "-size", "4096"}, "appends_per_s",
			map[string]string{"peer": "corfu", "fsync": "on", "store": "disk", "transport": "tcp", "replicas": "3", "unit_sync": "batch", "inflight": "8", "size": "4096"}},
		{"sync", []string{"-sync", "-fsync", "off", "-n", "50"}, "appends_per_s",
			map[string]string{"mode": "sync", "clients": "1", "window": "1", "unit_sync": "none"}},
		{"sequencer", []string{"-sequencer", "-transport", "inproc", "-batch", "4"}, "tokens_per_s",
			map[string]string{"peer": "corfu-sequencer", "batch": "4", "tokens": "200", "ops": "50"}},
		{"sequencer-tcp", []string{"-sequencer", "-store", "memory"}, "tokens_per_s",
			map[string]string{"peer": "corfu-sequencer", "transport": "tcp", "tokens": "200"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench", "-n", "200", "-warmup", "10", "-dir", dir}, tc.args...)
			require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			require.Len(t, lines, 1, "stdout: %s", stdout.String())
			keys, kv := parseBenchLine(t, lines[0])
			want := append([]string(nil), benchKeys...)
			want[3] = tc.rate
			require.GreaterOrEqual(t, len(keys), len(want), lines[0])
			require.Equal(t, want, keys[:len(want)], lines[0])
			for k, v := range tc.want {
				require.Equal(t, v, kv[k], "%s in %s", k, lines[0])
			}
			n := 200 // appends, or tokens with -sequencer
			for i, a := range tc.args {
				if a == "-n" {
					n, _ = strconv.Atoi(tc.args[i+1])
				}
			}
			ops, err := strconv.Atoi(kv["ops"])
			require.NoError(t, err)
			errs, err := strconv.Atoi(kv["errors"])
			require.NoError(t, err)
			if kv["batch"] != "" {
				b, err := strconv.Atoi(kv["batch"])
				require.NoError(t, err)
				n = (n + b - 1) / b // NB: ops counts Next calls
			}
			require.Equal(t, 0, errs, lines[0])
			require.Equal(t, n, ops+errs, lines[0])
			for _, k := range []string{tc.rate, "mb_per_s", "p50_us", "p99_us", "p999_us", "mean_us", "max_us", "elapsed_s"} {
				v, err := strconv.ParseFloat(kv[k], 64)
				require.NoError(t, err, "%s in %s", k, lines[0])
				require.GreaterOrEqual(t, v, 0.0, "%s in %s", k, lines[0])
			}
			if tc.name == "tcp" {
				// NB: durable 4 KB: the disk's bandwidth, measured in the
				// same run, and the target it sets.
				disk, err := strconv.ParseFloat(kv["disk_mb_per_s"], 64)
				require.NoError(t, err, lines[0])
				require.Positive(t, disk, lines[0])
				target, err := strconv.ParseFloat(kv["target_mb_per_s"], 64)
				require.NoError(t, err, lines[0])
				require.InDelta(t, 0.7*disk/3, target, 0.1, lines[0])
			}
			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, left, "the run's data directory was not removed")
		})
	}
}

// -cpuprofile, -trace and -memprofile each write their file, in the
// formats go tool pprof and go tool trace read.
func TestBenchProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, tr, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "run.trace"), filepath.Join(dir, "mem.prof")
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-transport", "inproc", "-store", "memory", "-n", "200", "-warmup", "10",
		"-cpuprofile", cpu, "-trace", tr, "-memprofile", mem}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
	for _, path := range []string{cpu, mem} {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b, "%s is not a gzipped profile", path)
	}
	b, err := os.ReadFile(tr)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("go 1.")), "%s is not an execution trace", tr)

	// NB: a profile that cannot be written fails the run.
	args = []string{"bench", "-transport", "inproc", "-store", "memory", "-n", "20", "-warmup", "0",
		"-trace", filepath.Join(dir, "missing", "run.trace")}
	stderr.Reset()
	require.NotEqual(t, 0, run(args, &stdout, &stderr))
	require.Contains(t, stderr.String(), "run.trace")
}

func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-fsync", "maybe"}, `-fsync must be on or off, got "maybe"`},
		{[]string{"-transport", "udp"}, `-transport must be tcp or inproc, got "udp"`},
		{[]string{"-store", "memory", "-fsync", "on"}, "-fsync on needs -store disk"},
		{[]string{"-window", "0"}, "-window must be in [1, 65536]"},
		{[]string{"-batch", "8"}, "-batch goes with -sequencer"},
		{[]string{"-cluster", "c.json", "-replicas", "2"}, "-replicas does not go with -cluster"},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(append([]string{"bench"}, tc.args...), &stdout, &stderr), "%q", tc.args)
		require.Contains(t, stderr.String(), tc.want, "%q", tc.args)
		require.Empty(t, stdout.String(), "%q", tc.args)
	}
}

// TestBenchBound: a durable one-at-a-time run over TCP measures the
// protocol's bound in the same run and reports it beside its p50.
func TestBenchBound(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-sync", "-fsync", "on", "-n", "30", "-warmup", "5", "-dir", t.TempDir()}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
	_, kv := parseBenchLine(t, strings.TrimSpace(stdout.String()))
	num := func(k string) int {
		v, err := strconv.Atoi(kv[k])
		require.NoError(t, err, "%s in %s", k, stdout.String())
		require.Positive(t, v, k)
		return v
	}
	fsync, rtt, total := num("fsync_us"), num("rtt_us"), num("bound_us")
	// NB: each figure is rounded down to a microsecond on its own.
	assert.InDelta(t, 3*fsync+4*rtt, total, 7, "replicas x fsync + (replicas + 1) x round trip")
	assert.Contains(t, stderr.String(), "# protocol bound: 3 x fsync")
}

func TestBoundTotal(t *testing.T) {
	b := bound{fsync: 200 * time.Microsecond, rtt: 20 * time.Microsecond, replicas: 3}
	assert.Equal(t, 680*time.Microsecond, b.total())
	b.replicas = 1
	assert.Equal(t, 240*time.Microsecond, b.total())
}
