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

	// CarryToken makes a writer whose write a seal refused before the
	// chain's head stored anything carry its token into the new epoch,
	// instead of giving the address up for a fresh token.
	CarryToken bool
	// OursByBytes makes a writer that meets ErrWritten decide that the
	// entry there is its own by comparing bytes, not the writer's identity.
	OursByBytes bool
	// TrustsNonHead makes a writer that meets ErrWritten at a replica after
	// the head count the entry there as its own without reading it.
	TrustsNonHead bool
	// FillSkipsCopy makes a fill that finds data at the chain's head return
	// it without copying it down the chain.
	FillSkipsCopy bool
	// BootstrapBeforeFill makes the recovery of a lost sequencer bootstrap
	// it before filling the addresses between what the units hold and its
	// reservation mark, and without merging what that fill finds into the
	// stream tails.
	BootstrapBeforeFill bool
	// ScanStopsAtTrim makes the rebuild of the streams' tails stop at the
	// first trimmed address it meets.
	ScanStopsAtTrim bool
	// StreamDropsOldest makes a stream reader drop the oldest entry of
	// each batch it returns.
	StreamDropsOldest bool
	// EpochGoesBack makes a client install every projection it fetches,
	// older ones too.
	EpochGoesBack bool
	// ProposerIgnoresAccepted makes a reconfiguring client propose its own
	// projection even when a layout server returned an accepted one.
	ProposerIgnoresAccepted bool
	// AcceptorSkipsEpochs makes a layout server promise and accept epochs
	// above the next one, before it has learned the one in between (the
	// acceptor looks itself up: Lookup(acceptor)), and a reconfiguring
	// client that finds the log sealed past the next epoch take that epoch
	// over at once instead of learning the ones below it first.
	AcceptorSkipsEpochs bool

	// WrongBackpointer makes the sequencer's answer to a token request
	// name, as a stream's newest address, one below the true one. The
	// simulator applies it at the sequencer's network boundary.
	WrongBackpointer bool
	// UnitServesStaleReads makes storage units serve reads from epochs
	// older than their seal. The simulator applies it at the units'
	// network boundary.
	UnitServesStaleReads bool
	// UnitWritesBelowTrim makes storage units answer a write refused
	// because its address was trimmed as if it had succeeded. The
	// simulator applies it at the units' network boundary.
	UnitWritesBelowTrim bool

	// RebuildSkipsJunk makes a rebuild copy a chain's entries and trims
	// to the joining unit, but not its junk (nor check the unit for it
	// before it joins).
	RebuildSkipsJunk bool
	// RebuildJoinsEarly makes a rebuild add the joining unit to its chain
	// without copying the chain to it first.
	RebuildJoinsEarly bool
	// RebuildKeepsLateWrites makes a rebuild keep whatever the joining
	// unit holds already, unchecked: a unit the detector replaced while
	// writes to it were still in flight, which landed on it later, joins
	// a chain with them.
	RebuildKeepsLateWrites bool
	// ReadTrustsRemovedUnit makes a reader that finds nothing (or junk)
	// at a unit trust that answer without knowing its projection is
	// current.
	ReadTrustsRemovedUnit bool
	// SequencerSavesLate: a durable sequencer's host answers before its
	// reservation mark is saved (the save lands later), so a crash in
	// between restarts it below tokens it handed out.
	SequencerSavesLate bool
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
