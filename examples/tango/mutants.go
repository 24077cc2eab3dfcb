package tango

import (
	"sync"

	"github.com/corfulog/corfu/corfu"
)

// mutants are deliberately broken variants of the runtime's rules, for
// the tests that show the checks catch them. They are switched on per
// client environment (setMutants, from the package's own tests), never in
// any other use.
type mutants struct {
	// SkipReadValidation commits every transaction, whatever changed
	// since its reads.
	SkipReadValidation bool
	// ReplayWithoutDecision decides a commit record from the objects the
	// runtime hosts alone, instead of waiting for the decision record when
	// it does not host every object read.
	ReplayWithoutDecision bool
	// TrimAtCheckpointRecord makes Trim trim below the checkpoints'
	// records instead of below the positions they were taken at, so that
	// the updates between the two are lost.
	TrimAtCheckpointRecord bool
	// QueryWithoutSync makes queries read the local view without syncing
	// it first, as a stale read does.
	QueryWithoutSync bool
}

var mutantRegistry = struct {
	sync.Mutex
	m map[corfu.Env]mutants
}{m: map[corfu.Env]mutants{}}

// setMutants switches m on for the runtimes of clients on env, and returns
// the function that switches them off.
func setMutants(env corfu.Env, m mutants) func() {
	mutantRegistry.Lock()
	defer mutantRegistry.Unlock()
	mutantRegistry.m[env] = m
	return func() {
		mutantRegistry.Lock()
		defer mutantRegistry.Unlock()
		delete(mutantRegistry.m, env)
	}
}

func lookupMutants(env corfu.Env) mutants {
	mutantRegistry.Lock()
	defer mutantRegistry.Unlock()
	return mutantRegistry.m[env]
}
