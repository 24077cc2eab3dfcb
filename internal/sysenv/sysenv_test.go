package sysenv

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Go runs every task it is given, however many run at once.
func TestGoRunsEveryTask(t *testing.T) {
	e := New(1)
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		e.Go("task", func() {
			defer wg.Done()
			ran.Add(1)
		})
	}
	wg.Wait()
	if n := ran.Load(); n != 1000 {
		t.Fatalf("ran %d tasks of 1000", n)
	}
}

// Tasks given one after another run on the goroutine the first one
// started, and that goroutine ends once no task comes for workerIdle.
func TestGoReusesIdleGoroutines(t *testing.T) {
	e := New(1)
	before := runtime.NumGoroutine()
	ids := map[string]bool{}
	for range 50 {
		id := make(chan string)
		e.Go("task", func() { id <- goroutineID() })
		ids[<-id] = true
		// NB: let the worker get back to waiting for the next task.
		for range 100 {
			runtime.Gosched()
		}
	}
	if len(ids) > 5 {
		t.Errorf("50 tasks, one after another, ran on %d goroutines", len(ids))
	}
	deadline := time.Now().Add(5 * workerIdle)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines %v after the last task, %d before: idle workers did not end", n, 5*workerIdle, before)
	}
}

// goroutineID returns the id of the calling goroutine, from the first line
// of its stack trace ("goroutine 7 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	return f[1]
}

// Close ends the idle goroutines at once, and Go still runs tasks after it.
func TestCloseEndsIdleGoroutines(t *testing.T) {
	e := New(1)
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		e.Go("task", wg.Done)
	}
	wg.Wait()
	e.Close()
	// NB: well inside workerIdle, so that only Close can explain it.
	deadline := time.Now().Add(workerIdle / 2)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
	done := make(chan struct{})
	e.Go("after close", func() { close(done) })
	<-done
}
