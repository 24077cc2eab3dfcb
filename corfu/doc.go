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
// # Walkthrough
//
// Package corfutest builds a whole cluster in process (layout servers, a
// sequencer, in-memory storage units in chains of two), and its Config names
// them; a client of another cluster names its servers and transport in a
// Config of its own.
//
//	cluster, err := corfutest.New(corfutest.Options{})
//	...
//	c, err := corfu.Open(ctx, cluster.Config())
//	...
//	addr, err := c.Append(ctx, []byte("hello")) // addr 0, on every replica
//	e, err := c.Read(ctx, addr)                 // e.Data is "hello"
//
// A read of an address reports what the log holds there:
//
//	e, err := c.Read(ctx, a)
//	switch {
//	case errors.Is(err, corfu.ErrJunk):      // a hole was filled: no entry, skip it
//	case errors.Is(err, corfu.ErrUnwritten): // at or past the tail: not written yet
//	case errors.Is(err, corfu.ErrTrimmed):   // trimmed: the entry is gone
//	case err != nil:                         // ctx ended, servers unreachable, ...
//	}
//
// Range and Follow walk the log in order and skip junk; a Stream (see
// Client.Stream) returns one stream's entries. The examples run all of it
// on an in-process cluster.
//
// # Errors
//
// Every call takes a context.Context and returns sentinel errors checked
// with errors.Is (ErrWritten, ErrUnwritten, ErrTrimmed, ErrJunk, ErrSealed,
// ErrUnknownOutcome, ...). When a server answers that it was sealed at a
// newer epoch, the client fetches the new projection and retries on its own;
// ErrSealed, with the server's epoch in a *storage.SealedError (errors.As),
// surfaces only when that keeps failing. An Append that gives up after part
// of its chain took the entry returns an *UnknownOutcomeError naming the
// address the entry may occupy; it is distinct from the context's error.
//
// # Environment
//
// The client takes its clock, timers, tasks and randomness from Config.Env,
// so the same code runs in production (the default, system Env) and in the
// deterministic simulator (package sim), which supplies virtual ones.
package corfu
