// Package sysenv is the real-world environment of the corfu client: wall
// time, real timers, goroutines and a seeded, locked random source. The
// simulator replaces it with a virtual one; protocol code never reaches the
// standard library's clock or goroutines except through it.
package sysenv

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Env is the system environment. It is safe for concurrent use.
type Env struct {
	rnd      *rand.Rand
	work     chan func()   // hands a task to an idle goroutine of Go's
	quit     chan struct{} // closed by Close: idle goroutines end
	quitOnce sync.Once
}

// New returns a system environment whose randomness is seeded with seed.
func New(seed uint64) *Env {
	return &Env{rnd: rand.New(&lockedSource{src: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}), work: make(chan func()), quit: make(chan struct{})}
}

// Now returns the wall-clock time.
func (e *Env) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (e *Env) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithTimeout is context.WithTimeout.
func (e *Env) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// AfterFunc is time.AfterFunc.
func (e *Env) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	return time.AfterFunc(d, f).Stop
}

// workerIdle is how long a goroutine of Go's waits for another task once
// its own is done, before it ends.
const workerIdle = time.Second

// Go runs f in a goroutine of its own: one that ran an earlier task and
// waits for another, if there is one, or a new one. Reusing goroutines
// spares each short task (an append batch, one request of a fan-out) the
// cost of growing a new goroutine's stack to the depth of a network call.
// A goroutine that gets no task for workerIdle ends, and so does one that
// is idle, or becomes idle, after Close.
func (e *Env) Go(name string, f func()) {
	select {
	case e.work <- f:
	default:
		go e.worker(f)
	}
}

// worker runs f, then the tasks Go hands it, until it waits workerIdle
// for one.
func (e *Env) worker(f func()) {
	var idle *time.Timer
	for {
		f()
		f = nil // NB: let the task's closure go while waiting
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case f = <-e.work:
			idle.Stop()
		case <-idle.C:
			return
		case <-e.quit:
			idle.Stop()
			return
		}
	}
}

// Close ends the goroutines of Go's that wait for a task, now rather than
// after workerIdle. Go still runs tasks afterwards, each on a goroutine
// that ends with it.
func (e *Env) Close() {
	e.quitOnce.Do(func() { close(e.quit) })
}

// Rand returns the environment's random source, safe for concurrent use.
func (e *Env) Rand() *rand.Rand { return e.rnd }

// NewSignal returns a Signal over a channel.
func (e *Env) NewSignal(string) Signal { return &chanSignal{ch: make(chan struct{})} }

// Signal is the system Env's one-shot wake-up (corfu.Signal).
type Signal interface {
	Fire() bool
	Wait(ctx context.Context) error
}

type chanSignal struct {
	once sync.Once
	ch   chan struct{}
}

func (s *chanSignal) Fire() bool {
	fired := false
	s.once.Do(func() { fired = true; close(s.ch) })
	return fired
}

func (s *chanSignal) Wait(ctx context.Context) error {
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockedSource makes a rand.Source safe for concurrent use. A math/rand/v2
// Rand keeps no state of its own, so a Rand over it is safe too.
type lockedSource struct {
	mu  sync.Mutex
	src rand.Source
}

func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src.Uint64()
}
