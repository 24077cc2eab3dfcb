// Package mutant holds the deliberately broken protocol variants the
// simulator's checker must catch. Each is off unless a test switches it on;
// production code paths only ever see the zero Set. Keeping them in an
// internal package means no user of the module can switch one on.
package mutant

import "sync"

// Set names the mutants switched on. The zero value switches none on.
type Set struct {
	// UnitIgnoresSeal makes storage units accept requests from epochs
	// older than their seal.
	UnitIgnoresSeal bool
	// ReadFromHead makes readers trust the chain's head instead of its tail.
	ReadFromHead bool
	// FillOverwrites makes a hole filler junk-fill the rest of a chain even
	// when its head holds data, instead of completing that data.
	FillOverwrites bool
	// SequencerRestartsAtZero makes every sequencer bootstrap forget the
	// tail it is given, so tokens start again from zero.
	SequencerRestartsAtZero bool
	// AckBeforeLast makes an append return once the chain's head has the
	// entry, before the other replicas do.
	AckBeforeLast bool
}

// Any reports whether any mutant is on.
func (s Set) Any() bool { return s != Set{} }

// registry maps a component's environment (a client's Env, say) to the
// mutants switched on for it. Only code inside this module can register.
var registry sync.Map

// Register switches s on for the component whose environment is key, until
// the returned function is called.
func Register(key any, s Set) (unregister func()) {
	registry.Store(key, s)
	return func() { registry.Delete(key) }
}

// Lookup returns the mutants switched on for key: the zero Set unless a
// test registered some.
func Lookup(key any) Set {
	if v, ok := registry.Load(key); ok {
		return v.(Set)
	}
	return Set{}
}
