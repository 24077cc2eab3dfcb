package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

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
