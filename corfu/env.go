package corfu

import (
	"context"
	"github.com/corfulog/corfu/internal/sysenv"
	"math/rand/v2"
	"time"
)

// Env is everything in the client that depends on the world: the clock,
// timers, deadlines, task spawning and randomness. The client never reads
// wall time, sleeps, starts goroutines or draws random numbers except through
// its Env, so the simulator can run it deterministically in virtual time.
//
// The zero Config uses the system environment (real time, goroutines, a rand
// seeded from Config.Seed). The simulator supplies a virtual one.
type Env interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first, and
	// returns ctx.Err() in the second case.
	Sleep(ctx context.Context, d time.Duration) error
	// WithTimeout returns a copy of ctx that is cancelled after d.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
	// AfterFunc runs f in its own task after d. stop cancels the call if it
	// has not started and reports whether it did so.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
	// Go runs f in a new task. name labels it in traces.
	Go(name string, f func())
	// Rand returns the environment's seeded source of randomness. The system
	// Env's is safe for concurrent use (its source is locked); the
	// simulator's runs one task at a time.
	Rand() *rand.Rand
	// NewSignal returns a new Signal. label names what it stands for in
	// the simulator's reports of a task that waits for ever.
	NewSignal(label string) Signal
}

// Signal is a one-shot wake-up between the tasks of an Env: one task waits
// for it, any task fires it. The simulator parks the waiting task in
// virtual time, which a Go channel would not let it do.
type Signal interface {
	// Fire wakes the task waiting on the Signal, now or when it comes to
	// wait, and reports whether this call did; later calls do nothing.
	Fire() bool
	// Wait blocks until Fire is called or ctx is done, and returns
	// ctx.Err() in the second case. A Signal serves one Wait.
	Wait(ctx context.Context) error
}

// systemEnv is the system environment (internal/sysenv) as an Env.
type systemEnv struct{ *sysenv.Env }

// NewSignal implements Env.
func (e systemEnv) NewSignal(label string) Signal { return e.Env.NewSignal(label) }
