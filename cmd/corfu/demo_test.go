package main

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs a small demo under faults twice: it passes, and its output
// is the same both times but for the wall-clock line.
func TestDemo(t *testing.T) {
	args := []string{"-seed=3", "-appends=60", "-reads=60"}
	var out [2]string
	for i := range out {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"demo"}, args...), &stdout, &stderr)
		require.Equal(t, 0, code, "demo failed:\n%s%s", stdout.String(), stderr.String())
		out[i] = regexp.MustCompile(`(?m)^wall time:.*$`).ReplaceAllString(stdout.String(), "")
	}
	require.Equal(t, out[0], out[1], "the same seed printed different runs")
	require.Contains(t, out[0], "verdict:      PASS")
	require.Contains(t, out[0], "replay:       go run ./cmd/corfu demo ")
	require.True(t, strings.Contains(out[0], "crash") || strings.Contains(out[0], "partition"), "no faults were injected:\n%s", out[0])
}

// TestDemoBadFlags checks that the demo refuses options it cannot run as
// asked: exit status 2, one line on stderr naming the problem, and no
// summary on stdout.
func TestDemoBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"unknown flag", []string{"-bogus"}, "flag provided but not defined: -bogus"},
		{"negative appenders", []string{"-appenders=-1"}, "-appenders must be positive"},
		{"negative appends", []string{"-appends=-5"}, "-appends must be positive"},
		{"zero readers", []string{"-readers=0"}, "-readers must be positive"},
		{"negative reads", []string{"-reads=-1"}, "-reads must be positive"},
		{"zero units", []string{"-units=0"}, "-units must be positive"},
		{"zero replicas", []string{"-replicas=0"}, "-replicas must be positive"},
		{"replicas above units", []string{"-units=2", "-replicas=3"}, "-replicas=3 is more than -units=2"},
		{"units not a multiple of replicas", []string{"-units=5", "-replicas=2"}, "not a multiple"},
		{"malformed duration", []string{"-faults=8"}, `invalid value "8" for flag -faults`},
		{"malformed latency", []string{"-latency=fast"}, `invalid value "fast" for flag -latency`},
		{"negative fault phase", []string{"-faults=-1s"}, "-faults must not be negative"},
		{"zero latency", []string{"-latency=0s"}, "-latency must be positive"},
		{"malformed count", []string{"-appends=many"}, `invalid value "many" for flag -appends`},
		{"negative seed", []string{"-seed=-1"}, `invalid value "-1" for flag -seed`},
		{"extra argument", []string{"-seed=2", "now"}, `unexpected arguments ["now"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"demo"}, tc.args...), &stdout, &stderr)
			assert.Equal(t, 2, code, "exit status")
			assert.Empty(t, stdout.String(), "no summary for bad flags")
			line := stderr.String()
			assert.Equal(t, 1, strings.Count(line, "\n"), "one line on stderr: %q", line)
			assert.True(t, strings.HasPrefix(line, "corfu demo: "), "%q", line)
			assert.Contains(t, line, tc.want)
		})
	}
}

// TestDemoHelp checks that -h lists the flags and is no error.
func TestDemoHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"demo", "-h"}, &stdout, &stderr)
	assert.Equal(t, 0, code)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "usage: corfu demo [flags]")
	assert.Contains(t, stderr.String(), "-replicas")
}

// TestReadme builds and runs the program of the README's first go block,
// as a package of this module, so that the README shows code that compiles
// and works as it is.
func TestReadme(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "\n```go\n")
	require.True(t, ok, "the README has a go block")
	src, _, ok := strings.Cut(rest, "\n```\n")
	require.True(t, ok, "the README's go block ends")
	src += "\n"
	formatted, err := format.Source([]byte(src))
	require.NoError(t, err, "the README's go block parses")
	assert.Equal(t, string(formatted), src, "the README's go block is gofmt'd")

	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the README's program with")
	}
	// NB: a directory of the module, so that the program's imports resolve
	// to this checkout; its name starts with "_", so that ./... skips it.
	dir, err := os.MkdirTemp(root, "_readme-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	cmd := exec.Command(gobin, "run", ".")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "go run of the README's program:\n%s", stderr.String())
	assert.Equal(t, "address 0: hello\nstream 1: 1 entry\n", stdout.String())
}
