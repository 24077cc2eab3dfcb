// Package corfu is the client of a CORFU shared log: one totally ordered,
// write-once log spread over many storage units, with a sequencer handing
// out addresses and layout servers keeping the projection (which units hold
// which addresses in which epoch).
//
// A client appends by taking a token (an address) from the sequencer and
// writing the entry down the replica chain that the projection maps the
// address to, head first; the append is acknowledged when the chain's tail
// has it. A read asks the chain's tail. A reader that finds an address
// handed out but never written waits for its writer, then fills it with junk
// so a crashed writer cannot hold up the log. Entries may belong to streams;
// a Stream reader finds its entries by following backpointers.
//
// Every call takes a context.Context and returns sentinel errors checked
// with errors.Is (ErrWritten, ErrUnwritten, ErrTrimmed, ErrJunk, ErrSealed,
// ErrUnknownOutcome, ...). When a server answers that it was sealed at a
// newer epoch, the client fetches the new projection and retries on its own.
//
// The client takes its clock, timers, tasks and randomness from Config.Env,
// so the same code runs in production (the default, system Env) and in the
// deterministic simulator (package sim), which supplies virtual ones.
package corfu
