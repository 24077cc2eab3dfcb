package corfu

import "github.com/corfulog/corfu/storage"

// This file holds the client calls that object runtimes over the log (such
// as examples/tango) build on.

// Env returns the environment the client takes its clock, timers, tasks and
// randomness from (Config.Env, or the system one). Code that runs beside the
// client, such as an object runtime that waits for the log, takes them from
// it too, so that it runs unchanged in the simulator.
func (c *Client) Env() Env { return c.env }

// StreamAt returns a reader of stream id at address from, a position that
// was taken in epoch since: every entry of the stream below from as the log
// stood in that epoch has been seen. Its first Sync goes back to the tail of
// any tail reset after since that lies below from (see Stream.Sync), which
// Client.Stream, taking the client's current epoch, would not: a reader that
// resumes from a position saved earlier (a checkpoint's) must name the epoch
// the position was taken in.
func (c *Client) StreamAt(id StreamID, from storage.Address, since storage.Epoch) *Stream {
	return &Stream{c: c, id: id, pos: from, epoch: since}
}

// Epoch returns the epoch in which the reader's position was taken: the
// projection epoch of its last Sync, or the one it was created with.
func (s *Stream) Epoch() storage.Epoch { return s.epoch }
