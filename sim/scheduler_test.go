package sim_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

func TestEventsFireInTimeOrder(t *testing.T) {
	s := sim.NewScheduler(1)
	var got []time.Duration
	for _, d := range []time.Duration{5, 1, 4, 2, 3, 0} {
		d := d * time.Millisecond
		s.Schedule(d, "e", func() {
			got = append(got, s.Elapsed())
			assert.Equal(t, d, s.Elapsed())
		})
	}
	require.NoError(t, s.Run())
	assert.Equal(t, []time.Duration{0, 1e6, 2e6, 3e6, 4e6, 5e6}, got)
	assert.Equal(t, uint64(6), s.Steps())
}

func TestTiesFireInInsertionOrder(t *testing.T) {
	s := sim.NewScheduler(1)
	var got []string
	add := func(name string) func() { return func() { got = append(got, name) } }
	s.Schedule(time.Second, "a", add("a"))
	s.Schedule(time.Second, "b", add("b"))
	s.Go("c", add("c")) // at 0
	s.Schedule(time.Second, "d", func() {
		got = append(got, "d")
		s.Schedule(0, "f", add("f")) // after e, which is already queued for now
	})
	s.Schedule(time.Second, "e", add("e"))
	require.NoError(t, s.Run())
	assert.Equal(t, []string{"c", "a", "b", "d", "e", "f"}, got)
}

func TestSleepAdvancesVirtualTimeExactly(t *testing.T) {
	s := sim.NewScheduler(1)
	start := s.Now()
	assert.Equal(t, time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC), start)
	var woke []time.Duration
	s.Go("sleeper", func() {
		for _, d := range []time.Duration{time.Millisecond, 0, 3 * time.Second, 7 * time.Nanosecond} {
			require.NoError(t, s.Sleep(context.Background(), d))
			woke = append(woke, s.Now().Sub(start))
		}
	})
	require.NoError(t, s.Run())
	assert.Equal(t, []time.Duration{
		time.Millisecond,
		time.Millisecond,
		time.Millisecond + 3*time.Second,
		time.Millisecond + 3*time.Second + 7,
	}, woke)
}

func TestSleepReturnsWhenContextDone(t *testing.T) {
	s := sim.NewScheduler(1)
	var err error
	var at time.Duration
	s.Go("sleeper", func() {
		ctx, cancel := s.WithTimeout(context.Background(), 2*time.Millisecond)
		defer cancel()
		err = s.Sleep(ctx, time.Hour)
		at = s.Elapsed()
	})
	require.NoError(t, s.Run())
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 2*time.Millisecond, at)
	// The hour-long timer was disarmed: the clock did not move to it.
	assert.Equal(t, 2*time.Millisecond, s.Elapsed())
}

func TestWithTimeout(t *testing.T) {
	s := sim.NewScheduler(1)
	type key struct{}
	s.Go("waiter", func() {
		ctx, cancel := s.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		dl, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.Equal(t, s.Now().Add(10*time.Millisecond), dl)
		child, cancelChild := context.WithCancel(context.WithValue(ctx, key{}, 1))
		defer cancelChild()
		grandchild, cancelGrandchild := s.WithTimeout(child, time.Hour)
		defer cancelGrandchild()
		dl2, _ := grandchild.Deadline()
		assert.Equal(t, dl, dl2, "a longer timeout keeps the parent's deadline")

		_, err := s.Wait(ctx, s.NewWaiter("nothing"))
		assert.Equal(t, 10*time.Millisecond, s.Elapsed())
		assert.Equal(t, context.DeadlineExceeded, err)
		assert.Equal(t, context.DeadlineExceeded, ctx.Err())
		// Cancellation reached the descendants synchronously.
		assert.Error(t, child.Err())
		assert.ErrorIs(t, context.Cause(child), context.DeadlineExceeded)
		assert.Equal(t, context.DeadlineExceeded, grandchild.Err())
	})
	require.NoError(t, s.Run())
}

func TestWithTimeoutCancelDisarmsTimer(t *testing.T) {
	s := sim.NewScheduler(1)
	ctx, cancel := s.WithTimeout(context.Background(), time.Second)
	cancel()
	assert.Equal(t, context.Canceled, ctx.Err())
	require.NoError(t, s.Run())
	assert.Zero(t, s.Steps(), "a disarmed timer is not an event")
	assert.Zero(t, s.Elapsed())

	ctx, cancel = s.WithTimeout(context.Background(), 0)
	defer cancel()
	assert.Equal(t, context.DeadlineExceeded, ctx.Err())
}

func TestCancelFromAnotherTaskWakesWaiter(t *testing.T) {
	s := sim.NewScheduler(1)
	ctx, cancel := context.WithCancel(context.Background())
	w := s.NewWaiter("reply")
	var err error
	var at time.Duration
	s.Go("waiter", func() {
		_, err = s.Wait(ctx, w)
		at = s.Elapsed()
	})
	s.Go("canceller", func() {
		require.NoError(t, s.Sleep(context.Background(), 3*time.Millisecond))
		cancel()
		require.NoError(t, s.Sleep(context.Background(), time.Millisecond))
		assert.False(t, w.Wake("too late"), "a given-up wait takes no value")
	})
	require.NoError(t, s.Run())
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 3*time.Millisecond, at)
}

func TestWakeBeforeCancelWins(t *testing.T) {
	// Wake and cancel in the same step: the Wake came first, so it wins.
	s := sim.NewScheduler(1)
	ctx, cancel := context.WithCancel(context.Background())
	w := s.NewWaiter("reply")
	var v any
	var err error
	s.Go("waiter", func() { v, err = s.Wait(ctx, w) })
	s.Go("waker", func() {
		assert.True(t, w.Wake("value"))
		cancel()
	})
	require.NoError(t, s.Run())
	assert.NoError(t, err)
	assert.Equal(t, "value", v)
}

func TestWakeBeforeWait(t *testing.T) {
	s := sim.NewScheduler(1)
	w := s.NewWaiter("early")
	assert.True(t, w.Wake(42))
	assert.False(t, w.Wake(43))
	var v any
	s.Go("waiter", func() {
		var err error
		v, err = s.Wait(context.Background(), w)
		assert.NoError(t, err)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, 42, v)
}

func TestWaitWakeFromEvent(t *testing.T) {
	s := sim.NewScheduler(1)
	w := s.NewWaiter("event")
	s.Schedule(5*time.Second, "wake", func() { w.Wake("hi") })
	var v any
	var at time.Duration
	s.Go("waiter", func() {
		v, _ = s.Wait(context.Background(), w)
		at = s.Elapsed()
	})
	require.NoError(t, s.Run())
	assert.Equal(t, "hi", v)
	assert.Equal(t, 5*time.Second, at)
}

func TestAfterFunc(t *testing.T) {
	s := sim.NewScheduler(1)
	var ran []time.Duration
	s.AfterFunc(2*time.Second, func() {
		ran = append(ran, s.Elapsed())
		// An AfterFunc task may block like any task.
		require.NoError(t, s.Sleep(context.Background(), time.Second))
		ran = append(ran, s.Elapsed())
	})
	stop := s.AfterFunc(time.Second, func() { t.Error("stopped AfterFunc ran") })
	assert.True(t, stop())
	assert.False(t, stop())
	late := s.AfterFunc(time.Millisecond, func() {})
	require.NoError(t, s.Run())
	assert.False(t, late(), "stop after the task started")
	assert.Equal(t, []time.Duration{2 * time.Second, 3 * time.Second}, ran)
}

func TestRunUntilAndRunFor(t *testing.T) {
	s := sim.NewScheduler(1)
	var fired []time.Duration
	for i := 1; i <= 5; i++ {
		s.Schedule(time.Duration(i)*time.Second, "tick", func() { fired = append(fired, s.Elapsed()) })
	}
	require.NoError(t, s.RunUntil(s.Now().Add(2*time.Second)))
	assert.Len(t, fired, 2, "an event due exactly at the limit runs")
	assert.Equal(t, 2*time.Second, s.Elapsed())
	require.NoError(t, s.RunFor(1500*time.Millisecond))
	assert.Len(t, fired, 3)
	assert.Equal(t, 3500*time.Millisecond, s.Elapsed())
	require.NoError(t, s.RunUntil(s.Now().Add(-time.Hour)), "a limit in the past is now")
	assert.Equal(t, 3500*time.Millisecond, s.Elapsed())
	require.NoError(t, s.Run())
	assert.Len(t, fired, 5)
}

func TestStop(t *testing.T) {
	s := sim.NewScheduler(1)
	n := 0
	for i := range 10 {
		s.Schedule(time.Duration(i), "tick", func() {
			n++
			if n == 4 {
				s.Stop()
			}
		})
	}
	require.NoError(t, s.Run())
	assert.Equal(t, 4, n)
	require.NoError(t, s.Run())
	assert.Equal(t, 10, n)
}

func TestStepBudget(t *testing.T) {
	s := sim.NewScheduler(1)
	s.MaxSteps = 1000
	s.Go("spinner", func() {
		for {
			if err := s.Sleep(context.Background(), time.Millisecond); err != nil {
				return
			}
		}
	})
	err := s.Run()
	require.ErrorIs(t, err, sim.ErrStepBudget)
	assert.Contains(t, err.Error(), "spinner")
	assert.Equal(t, uint64(1000), s.Steps())
	assert.False(t, s.Step())
	s.Close()
}

func TestTaskPanicIsTheRunsError(t *testing.T) {
	s := sim.NewScheduler(1)
	s.Go("bystander", func() { _ = s.Sleep(context.Background(), time.Hour) })
	s.Go("doomed", func() {
		_ = s.Sleep(context.Background(), time.Second)
		explodeInTask()
	})
	err := s.Run()
	var pe *sim.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "task doomed", pe.Task)
	assert.Equal(t, "boom", pe.Value)
	assert.Contains(t, string(pe.Stack), "explodeInTask")
	assert.Equal(t, time.Second, s.Elapsed(), "the run ends at the panic")
	assert.Equal(t, err, s.Run(), "a failed simulation stays failed")
	s.Close()
}

func explodeInTask() { panic("boom") }

func TestTaskGoexitIsAnError(t *testing.T) {
	s := sim.NewScheduler(1)
	s.Go("quitter", runtime.Goexit)
	err := s.Run()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "quitter")
}

func TestEventPanicIsTheRunsError(t *testing.T) {
	s := sim.NewScheduler(1)
	s.Schedule(time.Second, "bad event", func() { panic(errors.New("oops")) })
	var pe *sim.PanicError
	require.ErrorAs(t, s.Run(), &pe)
	assert.Contains(t, pe.Task, "bad event")
}

func TestDeadlockIsReported(t *testing.T) {
	s := sim.NewScheduler(1)
	s.Go("lonely", func() {
		_, _ = s.Wait(context.Background(), s.NewWaiter("a reply that never comes"))
	})
	s.Go("fine", func() { _ = s.Sleep(context.Background(), time.Second) })
	err := s.Run()
	require.ErrorIs(t, err, sim.ErrDeadlock)
	assert.Contains(t, err.Error(), "lonely (a reply that never comes)")
	assert.NotContains(t, err.Error(), "fine")
	// RunUntil does not call it a deadlock: the caller may still wake it.
	require.NoError(t, s.RunFor(time.Second))
	s.Close()
}

func TestBlockingOutsideATaskPanics(t *testing.T) {
	s := sim.NewScheduler(1)
	assert.PanicsWithValue(t, "sim: Sleep called outside a task", func() {
		_ = s.Sleep(context.Background(), time.Second)
	})
	assert.Panics(t, func() { _, _ = s.Wait(context.Background(), s.NewWaiter("x")) })
	var inner any
	s.Go("runner", func() {
		defer func() { inner = recover() }()
		_ = s.Run()
	})
	require.NoError(t, s.Run())
	assert.Equal(t, "sim: Run called from a task", inner)
}

func TestForkIsIndependent(t *testing.T) {
	draw := func(extra int) []uint64 {
		s := sim.NewScheduler(7)
		other := s.Fork("other")
		for range extra {
			other.Uint64()
			s.Rand().Uint64()
		}
		r := s.Fork("mine")
		return []uint64{r.Uint64(), r.Uint64(), r.Uint64()}
	}
	assert.Equal(t, draw(0), draw(5))
	s := sim.NewScheduler(7)
	assert.NotEqual(t, s.Fork("a").Uint64(), s.Fork("b").Uint64())
	assert.NotEqual(t, sim.NewScheduler(1).Fork("a").Uint64(), sim.NewScheduler(2).Fork("a").Uint64())
	assert.NotEqual(t, s.Env("c1").Rand().Uint64(), s.Env("c2").Rand().Uint64())
}

// taskWorkload runs 100 tasks that sleep, spawn, wait on each other with
// deadlines and cancel one another, all driven by the seed, and returns
// the trace hash and a log of what happened.
func taskWorkload(t *testing.T, seed uint64) (uint64, string) {
	s := sim.NewScheduler(seed)
	defer s.Close()
	var log strings.Builder
	r := s.Rand()
	const n = 100
	waiters := make([]*sim.Waiter, n)
	cancels := make([]context.CancelFunc, n)
	for i := range n {
		waiters[i] = s.NewWaiter(fmt.Sprintf("w%d", i))
		name := fmt.Sprintf("task%d", i)
		s.Go(name, func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			for j := range 10 {
				switch r.IntN(5) {
				case 0, 1:
					_ = s.Sleep(ctx, time.Duration(r.IntN(1000))*time.Microsecond)
				case 2:
					tctx, tcancel := s.WithTimeout(ctx, time.Duration(r.IntN(2000))*time.Microsecond)
					w := s.NewWaiter("peer")
					peer := r.IntN(n)
					s.AfterFunc(time.Duration(r.IntN(2000))*time.Microsecond, func() { w.Wake(peer) })
					v, err := s.Wait(tctx, w)
					tcancel()
					fmt.Fprintf(&log, "%s/%d %v %v %v\n", name, j, v, err, s.Elapsed())
				case 3:
					if c := cancels[r.IntN(n)]; c != nil && r.IntN(10) == 0 {
						c()
					}
				case 4:
					waiters[r.IntN(n)].Wake(i)
					_ = s.Sleep(ctx, 0)
				}
			}
			v, err := s.Wait(ctx, waiters[i])
			fmt.Fprintf(&log, "%s done %v %v %v\n", name, v, err, s.Elapsed())
		})
	}
	s.Go("closer", func() {
		_ = s.Sleep(context.Background(), time.Second)
		for _, c := range cancels {
			c()
		}
	})
	require.NoError(t, s.Run())
	return s.TraceHash(), log.String()
}

func TestSchedulerDeterministic(t *testing.T) {
	hash, log := taskWorkload(t, 1)
	for range 19 {
		h, l := taskWorkload(t, 1)
		require.Equal(t, log, l)
		require.Equal(t, hash, h)
	}
	seen := map[uint64]uint64{hash: 1}
	for seed := uint64(2); seed <= 10; seed++ {
		h, _ := taskWorkload(t, seed)
		if prev, ok := seen[h]; ok {
			t.Fatalf("seeds %d and %d give the same trace hash %x", prev, seed, h)
		}
		seen[h] = seed
	}
}

func TestVirtualTimeNeverGoesBackwards(t *testing.T) {
	s := sim.NewScheduler(3)
	var last time.Time
	var lastSeq uint64
	events := 0
	s.Trace = func(e sim.Event) {
		events++
		require.False(t, e.Time.Before(last), "time went from %v to %v", last, e.Time)
		if e.Time.Equal(last) && e.Seq != 0 {
			require.Greater(t, e.Seq, lastSeq, "ties must follow insertion order")
		}
		if e.Seq != 0 {
			last, lastSeq = e.Time, e.Seq
		}
	}
	r := s.Rand()
	for i := range 50 {
		s.Go(fmt.Sprintf("t%d", i), func() {
			for range 20 {
				ctx, cancel := s.WithTimeout(context.Background(), time.Duration(r.IntN(100))*time.Microsecond)
				_ = s.Sleep(ctx, time.Duration(r.IntN(200))*time.Microsecond)
				cancel()
				s.Schedule(time.Duration(r.IntN(50)), "noise", func() {})
			}
		})
	}
	require.NoError(t, s.Run())
	assert.Equal(t, int(s.Steps()), events)
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := sim.NewScheduler(1)
	var errs []error
	var deferred int
	for i := range 50 {
		s.Go(fmt.Sprintf("t%d", i), func() {
			defer func() {
				deferred++
				// A blocking call while being stopped ends the task.
				_ = s.Sleep(context.Background(), time.Second)
				t.Error("unreachable")
			}()
			err := s.Sleep(context.Background(), time.Duration(i+1)*time.Hour)
			errs = append(errs, err)
			// A task that ignores ErrStopped and blocks again is ended.
			_ = s.Sleep(context.Background(), time.Second)
			t.Error("unreachable")
		})
	}
	s.Go("waiter", func() {
		_, err := s.Wait(context.Background(), s.NewWaiter("never"))
		errs = append(errs, err)
	})
	s.AfterFunc(time.Hour, func() { t.Error("never started") })
	require.NoError(t, s.RunFor(time.Minute))
	assert.Greater(t, runtime.NumGoroutine(), before+50)
	s.Close()
	s.Close()
	assert.Len(t, errs, 51)
	for _, err := range errs {
		assert.ErrorIs(t, err, sim.ErrStopped)
	}
	assert.Equal(t, 50, deferred)
	assert.ErrorIs(t, s.Run(), sim.ErrStopped)
	s.Go("late", func() { t.Error("started after Close") })
	assert.False(t, s.Step())

	// Stopped goroutines exit at once; give the runtime a moment to reap
	// them, generously, for a loaded machine.
	for range 1000 {
		if runtime.NumGoroutine() <= before {
			break
		}
		time.Sleep(time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before)
}

func TestTraceHook(t *testing.T) {
	s := sim.NewScheduler(1)
	var got []string
	s.Trace = func(e sim.Event) {
		got = append(got, fmt.Sprintf("%v %s %s", e.Time.Sub(s.Now().Add(-s.Elapsed())), e.Kind, e.Label))
	}
	s.Go("a", func() {
		ctx, cancel := s.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Sleep(ctx, 2*time.Second)
	})
	s.Schedule(time.Millisecond, "f", func() {})
	require.NoError(t, s.Run())
	assert.Equal(t, []string{"0s start a", "1ms func f", "1s timeout a", "1s resume a"}, got)
}

func TestPureContextWakesWaitersOnDescendants(t *testing.T) {
	s := sim.NewScheduler(1)
	root, cancelRoot := s.WithTimeout(context.Background(), time.Hour)
	var order []string
	for i := range 5 {
		name := fmt.Sprint("w", i)
		s.Go(name, func() {
			// Every other waiter parks on a grandchild, the others on a
			// standard child, which the scheduler polls instead.
			var ctx context.Context = root
			if i%2 == 0 {
				child, cancel := s.WithTimeout(root, time.Hour)
				defer cancel()
				ctx, cancel = s.WithTimeout(child, time.Hour)
				defer cancel()
			} else {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(root)
				defer cancel()
			}
			_, err := s.Wait(ctx, s.NewWaiter("never"))
			assert.ErrorIs(t, err, context.Canceled)
			order = append(order, fmt.Sprintf("%s@%v", name, s.Elapsed()))
		})
	}
	s.AfterFunc(time.Second, cancelRoot)
	require.NoError(t, s.Run())
	// The scheduler's own contexts wake their waiters as they are
	// cancelled, in task start order; polled ones follow after the step.
	assert.Equal(t, []string{"w0@1s", "w2@1s", "w4@1s", "w1@1s", "w3@1s"}, order)
	assert.Equal(t, time.Second, s.Elapsed(), "every timer was disarmed or cancelled")
}

func TestPureContextSkipsFinishedWaits(t *testing.T) {
	s := sim.NewScheduler(1)
	root, cancelRoot := s.WithTimeout(context.Background(), time.Hour)
	woken := 0
	s.Go("waiter", func() {
		// Many waits on one long-lived context, each ended by a Wake.
		for i := range 100 {
			w := s.NewWaiter("reply")
			s.Schedule(time.Millisecond, "reply", func() { w.Wake(i) })
			ctx, cancel := s.WithTimeout(root, time.Minute)
			v, err := s.Wait(ctx, w)
			cancel()
			require.NoError(t, err)
			require.Equal(t, i, v)
		}
		_, err := s.Wait(root, s.NewWaiter("last"))
		assert.ErrorIs(t, err, context.Canceled)
		woken++
	})
	s.Schedule(time.Second, "cancel", cancelRoot)
	require.NoError(t, s.Run())
	assert.Equal(t, 1, woken)
	assert.Equal(t, time.Second, s.Elapsed())
}

// BenchmarkSchedulerEvents measures inline events: 1000 timers that each
// reschedule themselves, so the queue holds 1000 events throughout.
func BenchmarkSchedulerEvents(b *testing.B) {
	s := sim.NewScheduler(1)
	s.MaxSteps = 1 << 62
	r := s.Fork("bench")
	left := b.N
	var tick func()
	tick = func() {
		if left > 0 {
			left--
			s.Schedule(time.Duration(r.IntN(1000))*time.Microsecond, "tick", tick)
		}
	}
	for range 1000 {
		s.Schedule(time.Duration(r.IntN(1000))*time.Microsecond, "tick", tick)
	}
	b.ReportAllocs()
	b.ResetTimer()
	require.NoError(b, s.Run())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkTaskSwitch measures task switches: 100 tasks that sleep in a
// loop, each sleep a park, a timer event and a resume.
func BenchmarkTaskSwitch(b *testing.B) {
	s := sim.NewScheduler(1)
	s.MaxSteps = 1 << 62
	left := b.N
	for i := range 100 {
		s.Go(fmt.Sprint("t", i), func() {
			for left > 0 {
				left--
				_ = s.Sleep(context.Background(), time.Duration(1+i)*time.Microsecond)
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	require.NoError(b, s.Run())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "switches/s")
	s.Close()
}

// BenchmarkTaskSwitchParked measures task switches while many other tasks
// wait with a context that can be cancelled: one of WithTimeout's, which
// the scheduler wakes directly, or a standard one, which it must poll after
// every task step.
func BenchmarkTaskSwitchParked(b *testing.B) {
	for _, kind := range []string{"env", "std"} {
		for _, parked := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s-%d", kind, parked), func(b *testing.B) {
				s := sim.NewScheduler(1)
				s.MaxSteps = 1 << 62
				for i := range parked {
					s.Go(fmt.Sprint("p", i), func() {
						ctx, cancel := s.WithTimeout(context.Background(), 1000*time.Hour)
						defer cancel()
						if kind == "std" {
							ctx, cancel = context.WithCancel(ctx)
							defer cancel()
						}
						_, _ = s.Wait(ctx, s.NewWaiter("never"))
					})
				}
				left := b.N
				for i := range 2 {
					s.Go(fmt.Sprint("t", i), func() {
						for left > 0 {
							left--
							_ = s.Sleep(context.Background(), time.Microsecond)
						}
					})
				}
				require.NoError(b, s.RunFor(0))
				b.ResetTimer()
				require.NoError(b, s.RunFor(time.Hour))
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "switches/s")
				s.Close()
			})
		}
	}
}
