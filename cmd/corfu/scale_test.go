package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tinyScale is a corfu scale command line small enough for a test.
func tinyScale(out string) []string {
	return []string{"scale", "--out", out, "--chains", "1,2", "--clients", "8", "--workers", "4",
		"--warmup", "2ms", "--window", "10ms"}
}

// TestScaleWritesFigure: corfu scale writes the CSV, one row per number of
// chains, and a PNG, and prints the markdown table; a second run of the
// same seed writes the same CSV.
func TestScaleWritesFigure(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCmd(tinyScale(out)...)
	require.Equal(t, 0, code, stderr)
	csv, err := os.ReadFile(filepath.Join(out, "scaling.csv"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "chains,units,appends_per_s,reads_per_s,append_mean_latency_us,read_mean_latency_us", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "1,2,"), lines[1])
	assert.True(t, strings.HasPrefix(lines[2], "2,4,"), lines[2])
	png, err := os.ReadFile(filepath.Join(out, "scaling.png"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	assert.Contains(t, stdout, "| chains | units | appends/s | reads/s |")
	assert.Contains(t, stdout, "| 2 | 4 | ")

	again := t.TempDir()
	code, _, stderr = runCmd(tinyScale(again)...)
	require.Equal(t, 0, code, stderr)
	csv2, err := os.ReadFile(filepath.Join(again, "scaling.csv"))
	require.NoError(t, err)
	assert.Equal(t, string(csv), string(csv2), "one seed, one CSV")
}

// TestScaleBadFlags: a bad flag is a usage error, exit status 2, and
// nothing is written.
func TestScaleBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--chains", "0"},
		{"--chains", "1,x"},
		{"--link", "0"},
		{"--window", "0s"},
		{"-j", "0"},
		{"extra"},
	} {
		out := t.TempDir()
		code, stdout, stderr := runCmd(append([]string{"scale", "--out", out}, args...)...)
		assert.Equal(t, 2, code, "%v", args)
		assert.Empty(t, stdout, "%v", args)
		assert.Contains(t, stderr, "corfu scale:", "%v", args)
		_, err := os.Stat(filepath.Join(out, "scaling.csv"))
		assert.True(t, os.IsNotExist(err), "%v", args)
	}
	code, _, stderr := runCmd("scale", "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "usage: corfu scale")
}

// TestThousands: the table's numbers group their digits.
func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 30330: "30,330", 933920.4: "933,920", 1234567: "1,234,567"} {
		assert.Equal(t, want, thousands(in))
	}
}
