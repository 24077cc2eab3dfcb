//go:build !race

package tango_test

// raceEnabled: see race_test.go.
const raceEnabled = false
