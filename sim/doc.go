// Package sim runs CORFU in process, deterministically, in virtual time: the
// same client code as production, against the same servers, over a
// simulated network whose delays and faults are drawn from one seed.
//
// # Scheduler
//
// A Scheduler is a discrete-event simulator. Its queue holds events ordered
// by (virtual time, sequence number), the sequence number being the order
// of scheduling, and it processes them one at a time. Its clock starts at
// 2026-01-01 00:00:00 UTC and moves only from one event's time to the
// next; it never reads the wall clock.
//
// The Scheduler implements corfu.Env, so a client runs on it unchanged.
// Client code runs in tasks (Go, AfterFunc): goroutines that run only while
// they hold the scheduler's baton, so exactly one goroutine, the scheduler's
// or one task's, runs at any moment. A task that blocks in the Env (Sleep,
// Wait, a Network call) parks: it records what will wake it, hands the baton
// back and waits to be resumed by an event. Go's goroutine scheduling thus
// never decides anything, and a seed replays the same run, event for event;
// TraceHash summarizes the run so that two runs can be compared.
//
// Waiting for "a reply or the context" is one call, Wait, rather than a Go
// select over two channels: the scheduler decides which comes first. A
// context may be cancelled by a deadline (WithTimeout, on a virtual timer),
// by another task or by an event. Contexts made by WithTimeout over
// contexts that are never cancelled (or over other such contexts) can only
// be cancelled by the scheduler, which then schedules their waiting tasks
// to resume at once. For any other context, the scheduler checks the
// parked tasks' contexts after each step that could have cancelled one, in
// task start order, and schedules the cancelled ones to resume; that costs
// a channel poll per such task and step, so simulated code does best to
// derive its contexts from WithTimeout.
//
// Run drives the simulation until no event is left and reports a deadlock
// if tasks are still parked then; RunUntil and RunFor stop at a virtual
// time; MaxSteps bounds every run, which turns a livelock into an error. A
// panic in a task or an event ends the run with a *PanicError. Close ends
// the parked tasks: their pending Env call returns ErrStopped.
//
// # Rules for simulated code
//
// Code run by the scheduler must take time, timers, deadlines, tasks and
// randomness from its corfu.Env only. In particular it must not:
//   - call time.Now, time.Sleep, time.After or context.WithTimeout (real
//     timers), or start goroutines with the go statement;
//   - use context.AfterFunc, or contexts of its own types, whose
//     cancellation reaches children through a goroutine of the context
//     package rather than at once;
//   - let a map's iteration order or a select among ready channels decide
//     anything.
//
// Contexts built with context.Background, WithCancel, WithValue and the
// Env's WithTimeout are fine: their cancellation is synchronous.
//
// # Network
//
// A Network connects callers to servers (transport.Handler) through the
// scheduler. Every message is encoded and decoded with the transport codec,
// as over TCP, and a Policy decides each message's fate: its delay (from a
// LatencyModel by default), loss or duplication. Faults are policies and
// node hooks at this boundary; protocol code knows nothing of them.
//
// # Disks
//
// By default a cluster's units are in memory and its layout servers and
// sequencers keep their state in memory across crashes. In durable mode
// (Options.Disk, Cluster.UseDurable) they run the production code's durable
// state, storage/disk and transport/persist, each node on a simulated disk
// (a vfs.MemFS beneath an errorfs.FS): a crash is a power loss, and the disk
// faults D1-D6 are injected beneath that code (see Durable).
//
// Randomness comes from named sub-streams of the seed (Scheduler.Fork): the
// network draws from "net", the Env's Rand from "env", so an extra draw in
// one component leaves the others' streams as they were.
package sim
