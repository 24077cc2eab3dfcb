// Package storage defines the CORFU storage unit: a write-once 64-bit address
// space guarded by an epoch, and the addresses, epochs and sentinel errors that
// every other package shares.
//
// A unit is a plain synchronous state machine: it holds no goroutines, reads no
// clock and draws no randomness. Transports serve it over a network; the
// simulator calls it directly when it delivers a message.
//
// Memory is the in-memory Unit, indexed by a B-tree. Besides the Unit methods
// it offers read-only inspection (Inspect, Ascend, Epoch, TrimMark, Tail) for
// tests, checkers and tools. Package storagetest holds the conformance suite
// that every Unit implementation runs.
//
// Errors are sentinel values checked with errors.Is: ErrWritten, ErrUnwritten,
// ErrTrimmed, ErrJunk, ErrFutureEpoch, ErrTooLarge, ErrInvalidAddress,
// ErrNilData and ErrSealed (returned as a *SealedError that carries the unit's
// current epoch and unwraps to ErrSealed; read it with errors.As).
package storage
