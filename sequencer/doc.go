// Package sequencer implements the CORFU sequencer: the service that hands
// out tokens, the global log addresses that appenders then write.
//
// CORFU paper, the sequencer: it is an optimization, not a source of truth.
// Its state (the next address to hand out and, for Tango streams, the last K
// addresses of each stream) is soft: after a failure a new sequencer is
// bootstrapped with the tail found by sealing the storage units and with
// stream tails rebuilt from the log.
//
// Epochs fence it as they fence a storage unit. A request with an older epoch
// gets a *storage.SealedError carrying the sequencer's epoch; one with a newer
// epoch, or any request before the sequencer has been bootstrapped in its
// current epoch, gets ErrNotReady. Seal moves to a new epoch and stops the
// sequencer; Bootstrap starts it again. Bootstrap never lowers the tail, so
// within one Sequencer's life no address is handed out twice.
//
// Tango paper, streams: each token carries backpointers, the last K addresses
// of every stream its entry belongs to. A stream reader follows them from the
// stream's tail back to where it left off, then reads forward.
//
// A Sequencer is a plain synchronous state machine: no goroutines, no clock,
// no randomness, no I/O. A transport serves it; the simulator calls it when it
// delivers a message.
package sequencer
