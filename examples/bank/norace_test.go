//go:build !race

package bank_test

// raceEnabled: see race_test.go.
const raceEnabled = false
