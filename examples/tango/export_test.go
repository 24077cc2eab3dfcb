package tango

import "github.com/corfulog/corfu/corfu"

// Mutants, for the tests of package tango_test.
type Mutants = mutants

// SetMutants switches mutants on for the runtimes opened on env from then
// on, and returns the function that switches them off.
func SetMutants(env corfu.Env, m Mutants) func() { return setMutants(env, m) }
