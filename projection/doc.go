// Package projection describes a CORFU projection, the configuration of one
// epoch, and agrees on one projection per epoch among the layout servers.
//
// A Projection names the sequencer, the layout servers and a list of
// segments. CORFU paper, the projection: a segment covers the global
// addresses [Start, End) and lists k replica chains (stripes); global address
// a in it lives on chain (a-Start) mod k at local address
// Base + (a-Start) div k on every replica of that chain. Only the last
// segment is open-ended. Locate is that mapping, Global its inverse, and
// Segment.LocalFloor turns a global prefix trim into a local one per stripe.
//
// Validate checks that a projection is well formed, and ValidateNext that a
// projection may follow the committed one: its epoch is higher and it keeps
// the addresses the previous one committed where they were. Parse reads the
// JSON form that encoding/json writes.
//
// Projections are stored on layout servers, one write-once slot per epoch.
// An Acceptor is one layout server's state: Prepare, Propose and Commit are
// the acceptor and learner sides of single-decree Paxos for each epoch, so
// that two clients racing to reconfigure can never install two different
// projections for one epoch. Like a storage unit, an Acceptor is a plain
// synchronous state machine: no goroutines, no clock, no randomness, no I/O.
package projection
