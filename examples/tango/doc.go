// Package tango is a runtime for replicated objects over a corfu log, after
// Tango (Balakrishnan et al., SOSP 2013).
//
// An object is an in-memory view of a stream of the log. Its updates are
// entries appended to the stream (the update helper, Object.Update); every
// replica of the object, on any client, builds the same view by applying
// the stream's entries in log order (the Apply upcall of its Spec). A query
// (Object.Query) first syncs the view with the log's tail, so it sees every
// update acknowledged before it began: reads are linearizable because the
// log is. Object.Stale reads the view as it is, without the round trips.
//
// Objects are typed: a Spec[S, Op] names the state type S, the operation
// type Op, Apply, and the codecs that carry them into the log (Binary, a
// compact layout by Go type, is the default; JSON is the alternative). Map,
// Counter, Register and Queue are ready-made. A Runtime hosts any subset of
// a log's objects on one client; several clients host overlapping subsets.
//
// # Transactions
//
// Runtime.RunTx runs a function as an optimistic transaction over several
// objects: reads record where the runtime stood, writes are buffered, and
// the commit appends one commit record, with both, to the streams of the
// objects written. Every runtime that hosts one of them decides the record
// the same way when its replay reaches it: it commits if nothing the
// transaction read was written between its reads and the record. A runtime
// that hosts a written object but not every object read takes the decision
// record that the writer appends. Read-only transactions (Runtime.ReadOnly)
// append nothing; Runtime.ReadAt reads a snapshot as of a log position.
// Aborts are *ConflictError values naming the object, key and address.
//
// # Checkpoints
//
// Runtime.Checkpoint writes the state of the hosted objects into the log,
// on each object's CheckpointStream, so that the log can be trimmed below
// it (Runtime.Trim) and a new replica starts from the checkpoint and the
// log after it; a replica that meets trimmed updates rebuilds from the
// checkpoints by itself. docs/objects.md says how to write an object of
// one's own, what the transactions guarantee and what checkpoints cost.
package tango
