package corfu

import (
	"context"
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
}
