package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/corfulog/corfu/corfu"
)

// epoch is where every scheduler's virtual clock starts.
var epoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// DefaultMaxSteps is the step budget of a Scheduler whose MaxSteps is zero.
const DefaultMaxSteps = 50_000_000

var (
	// ErrStopped is returned by a blocking Env call (Sleep, Wait, a network
	// Call) that was pending when the scheduler was closed.
	ErrStopped = errors.New("sim: scheduler stopped")
	// ErrDeadlock reports that no events are left while tasks are still
	// parked, so nothing can ever wake them. The wrapping error names them.
	ErrDeadlock = errors.New("sim: deadlock")
	// ErrStepBudget reports that a run used up the scheduler's MaxSteps: the
	// simulation stalled or livelocked. The wrapping error names the parked
	// tasks.
	ErrStepBudget = errors.New("sim: step budget exhausted")
)

// PanicError reports a panic inside a task or an event. It is the error of
// the run in which it happened.
type PanicError struct {
	Task  string // the task's name, or the event's label
	Value any    // the value passed to panic
	Stack []byte // the goroutine's stack at the panic
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("sim: %s panicked: %v\n%s", e.Task, e.Value, e.Stack)
}

// Kind classifies an event for the trace.
type Kind uint8

// The kinds of events.
const (
	KindStart   Kind = iota + 1 // a task starts (Go, AfterFunc)
	KindResume                  // a parked task resumes
	KindTimer                   // a Sleep ends
	KindTimeout                 // a WithTimeout deadline passes
	KindFunc                    // a function given to Schedule runs
	KindDeliver                 // a request reaches a node
	KindReply                   // a response reaches a caller
	KindDrop                    // a message is lost; not a queued event
)

var kindNames = [...]string{
	KindStart:   "start",
	KindResume:  "resume",
	KindTimer:   "timer",
	KindTimeout: "timeout",
	KindFunc:    "func",
	KindDeliver: "deliver",
	KindReply:   "reply",
	KindDrop:    "drop",
}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one step of a run as the Trace hook sees it.
type Event struct {
	Time   time.Time
	Seq    uint64 // the event's sequence number; 0 for notes such as drops
	Kind   Kind
	Label  string // the task, timer or node the event concerns
	Detail string // more about it (network events), built only when tracing
}

// event is a queued event. Exactly one of fn and task is set.
type event struct {
	at     int64 // virtual nanoseconds since epoch
	seq    uint64
	kind   Kind
	label  string
	detail string
	fn     func()
	task   *task
	tm     *timer // non-nil if the event can be stopped
}

// timer lets the owner of a queued event disarm it. A stopped event stays in
// the queue and is discarded, without advancing the clock, when it comes up.
type timer struct {
	stopped bool
	fired   bool
}

func (tm *timer) stop() bool {
	if tm.stopped || tm.fired {
		return false
	}
	tm.stopped = true
	return true
}

// queue is a binary min-heap of events ordered by (at, seq).
type queue []event

func (q queue) less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	n := len(h) - 1
	e := h[0]
	h[0] = h[n]
	h[n] = event{} // drop references held by the vacated slot
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return e
}

type taskState uint8

const (
	taskNew     taskState = iota // created, not started
	taskRunning                  // holds the baton
	taskParked                   // blocked in an Env call
	taskDone                     // returned, panicked or exited
)

// task is a goroutine that runs only while it holds the baton.
type task struct {
	id    uint64 // start order
	slot  int    // index in Scheduler.live and Scheduler.liveDone
	name  string
	f     func()
	ch    chan struct{} // the scheduler hands the baton over on it
	state taskState

	// While parked in Wait:
	park    uint64 // counts the task's parks
	waiter  *Waiter
	waitCtx context.Context
}

// Scheduler is a deterministic discrete-event simulator in virtual time. It
// implements corfu.Env, so the client's real code runs on it as tasks.
//
// Events are processed in order of (virtual time, sequence number); the
// sequence number is the order in which they were scheduled, so ties are
// broken by insertion order alone. Tasks are goroutines that run only while
// they hold the scheduler's baton, one at a time: a task that makes a
// blocking Env call (Sleep, Wait, a network Call) parks and hands the baton
// back, and the scheduler resumes it from an event. Nothing depends on Go's
// goroutine scheduling, on select among ready channels or on map order.
//
// A Scheduler is not safe for concurrent use. It is driven by one goroutine
// (the test), through Step, Run, RunUntil, RunFor and Close, and from inside
// its own tasks and events; the methods that block (Sleep, Wait) must be
// called from a task.
type Scheduler struct {
	// MaxSteps bounds the events processed over the scheduler's life; a run
	// that reaches it fails with ErrStepBudget. Zero means DefaultMaxSteps.
	MaxSteps uint64
	// Trace, if set, is called for every event processed and every message
	// dropped. It runs in the scheduler and must not call blocking methods.
	Trace func(Event)

	seed   uint64
	now    int64
	seq    uint64
	steps  uint64
	hash   uint64
	q      queue
	rng    *rand.Rand
	nextID uint64
	live   []*task // started tasks, in start order; finished ones are swept by scan
	// liveDone[i] is the Done channel of live[i]'s ctx while live[i] waits,
	// not yet woken, on a ctx that must be polled (one that can be cancelled
	// and is not a pure timeoutCtx); nil otherwise. scan polls it.
	liveDone []<-chan struct{}
	polled   int   // non-nil entries in liveDone
	finished int   // tasks in live that are done
	current  *task // the task holding the baton, nil when the scheduler has it
	yield    chan struct{}

	mayCancel bool // a context may have been cancelled since the last scan
	stopReq   bool
	closed    bool
	err       error
}

var _ corfu.Env = (*Scheduler)(nil)

// NewScheduler returns a scheduler whose clock reads 2026-01-01 00:00:00 UTC
// and whose randomness all derives from seed.
func NewScheduler(seed uint64) *Scheduler {
	s := &Scheduler{
		seed:  seed,
		hash:  fnvOffset,
		yield: make(chan struct{}),
	}
	s.rng = s.Fork("env")
	return s
}

// Seed returns the seed the scheduler was created with.
func (s *Scheduler) Seed() uint64 { return s.seed }

// Fork returns a new generator whose stream derives from the scheduler's
// seed and name alone, so that draws from one component never shift those
// of another. Two calls with the same name return generators with the same
// stream; give each component its own name.
func (s *Scheduler) Fork(name string) *rand.Rand {
	h := fnvString(fnvOffset, name)
	return rand.New(rand.NewPCG(splitmix(s.seed^splitmix(h)), splitmix(h+0x9e3779b97f4a7c15)))
}

// Now returns the virtual time.
func (s *Scheduler) Now() time.Time { return epoch.Add(time.Duration(s.now)) }

// Elapsed returns the virtual time passed since the scheduler was created.
func (s *Scheduler) Elapsed() time.Duration { return time.Duration(s.now) }

// Steps returns the number of events processed so far.
func (s *Scheduler) Steps() uint64 { return s.steps }

// TraceHash returns a hash of every event processed so far: its time,
// sequence number, kind and label, and the bytes of every network message.
// Two runs from the same seed give the same hash.
func (s *Scheduler) TraceHash() uint64 { return s.hash }

// Err returns the error that ended the simulation (a task's panic), or nil.
func (s *Scheduler) Err() error { return s.err }

// Rand returns the scheduler's generator, the sub-stream Fork("env"). Tasks
// run one at a time, so they may share it.
func (s *Scheduler) Rand() *rand.Rand { return s.rng }

// Env returns a view of s for one component (a client, say): the same
// scheduler, except that Rand returns the sub-stream Fork(name).
func (s *Scheduler) Env(name string) corfu.Env {
	return &env{Scheduler: s, rng: s.Fork(name)}
}

type env struct {
	*Scheduler
	rng *rand.Rand
}

func (e *env) Rand() *rand.Rand { return e.rng }

// schedule queues an event d after now; a negative d counts as zero, and
// a time beyond the clock's range as its end.
func (s *Scheduler) schedule(d time.Duration, e event) {
	switch {
	case d < 0:
		d = 0
	case int64(d) > math.MaxInt64-s.now:
		d = time.Duration(math.MaxInt64 - s.now)
	}
	e.at = s.now + int64(d)
	s.seq++
	e.seq = s.seq
	s.q.push(e)
}

// Schedule runs f in the scheduler itself, not as a task, d after now. f
// must not block; it may schedule events, start tasks and wake waiters.
func (s *Scheduler) Schedule(d time.Duration, label string, f func()) {
	if s.closed {
		return
	}
	s.schedule(d, event{kind: KindFunc, label: label, fn: f})
}

// Go starts f as a new task at the current virtual time, after the events
// already queued for it. name labels the task in traces and errors. Go does
// nothing once the scheduler is closed.
func (s *Scheduler) Go(name string, f func()) {
	if s.closed {
		return
	}
	s.schedule(0, event{kind: KindStart, label: name, task: &task{name: name, f: f}})
}

// AfterFunc starts f as a new task d after now. stop disarms it and reports
// whether it did so before the task started.
func (s *Scheduler) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	tm := &timer{}
	if s.closed {
		tm.stopped = true
		return tm.stop
	}
	name := "afterfunc"
	if s.current != nil {
		name = s.current.name + "/afterfunc"
	}
	s.schedule(d, event{kind: KindStart, label: name, task: &task{name: name, f: f}, tm: tm})
	return tm.stop
}

// timeoutCtx is the context WithTimeout returns: a standard cancelable
// context (so cancellation reaches its children synchronously) that reports
// its virtual deadline and, once the deadline has passed,
// context.DeadlineExceeded from Err as a context.WithTimeout would.
//
// A pure timeoutCtx is one that only the scheduler can cancel: its parent
// is another pure one, or a context that is never cancelled. Tasks that wait
// on it are registered with it and its pure ancestors and woken the moment
// one of them is cancelled, so they cost nothing to poll.
type timeoutCtx struct {
	context.Context
	deadline time.Time
	s        *Scheduler
	pure     bool
	parent   *timeoutCtx // the pure parent, if any
	done     bool        // cancelled through cancel
	waits    []parkedOn  // tasks waiting on it or a pure descendant; some stale
}

// parkedOn identifies one park of a task; it is stale once the task has
// moved on.
type parkedOn struct {
	t    *task
	park uint64
}

func (p parkedOn) live() bool {
	return p.t.park == p.park && p.t.waiter != nil && !p.t.waiter.woken
}

func (c *timeoutCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *timeoutCtx) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}

// register records that t waits on c, with c and its pure ancestors.
func (c *timeoutCtx) register(t *task) {
	p := parkedOn{t: t, park: t.park}
	for a := c; a != nil; a = a.parent {
		if len(a.waits) == cap(a.waits) && len(a.waits) >= 8 {
			a.waits = slices.DeleteFunc(a.waits, func(p parkedOn) bool { return !p.live() })
		}
		a.waits = append(a.waits, p)
	}
}

// cancel cancels c with cause and, if c is pure, wakes the tasks waiting
// on it or its pure descendants, in task start order.
func (c *timeoutCtx) cancel(cancel context.CancelCauseFunc, cause error) {
	cancel(cause)
	if c.done || !c.pure || c.s.closed {
		return
	}
	c.done = true
	var woken []*task
	for _, p := range c.waits {
		if p.live() {
			woken = append(woken, p.t)
		}
	}
	c.waits = nil
	slices.SortFunc(woken, func(a, b *task) int { return cmp.Compare(a.id, b.id) })
	for _, t := range woken {
		c.s.cancelWait(t)
	}
}

// WithTimeout returns a child of ctx that is cancelled when the virtual
// clock reaches now+d. Its Err is then context.DeadlineExceeded, and
// context.Cause is context.DeadlineExceeded for it and its descendants (a
// plain context.WithCancel child reports context.Canceled from Err). The
// returned CancelFunc cancels it at once and disarms the timer.
//
// If ctx's deadline is no later than now+d, no timer is set: ctx's own
// deadline cancels the child.
func (s *Scheduler) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d < 0 {
		d = 0
	}
	deadline := s.Now().Add(d)
	inner, cancel := context.WithCancelCause(ctx)
	c := &timeoutCtx{Context: inner, deadline: deadline, s: s}
	if p, ok := ctx.(*timeoutCtx); ok && p.s == s && p.pure {
		c.pure = true
		c.parent = p
	} else if ctx.Done() == nil {
		c.pure = true
	}
	if pd, ok := ctx.Deadline(); ok && !pd.After(deadline) {
		c.deadline = pd
		return c, func() { c.cancel(cancel, context.Canceled) }
	}
	if d == 0 {
		c.cancel(cancel, context.DeadlineExceeded)
		return c, func() {}
	}
	tm := &timer{}
	label := "timeout"
	if s.current != nil {
		label = s.current.name
	}
	s.schedule(d, event{kind: KindTimeout, label: label, fn: func() { c.cancel(cancel, context.DeadlineExceeded) }, tm: tm})
	return c, func() {
		tm.stop()
		c.cancel(cancel, context.Canceled)
	}
}

// Sleep parks the calling task until the virtual clock reaches now+d, or
// until ctx is done, and then returns ctx.Err(). A zero d yields to the
// events already queued for now. It must be called from a task; it returns
// ErrStopped if the scheduler is closed while it waits.
func (s *Scheduler) Sleep(ctx context.Context, d time.Duration) error {
	t := s.blockingCall("Sleep")
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &Waiter{s: s, label: "sleep"}
	tm := &timer{}
	s.schedule(d, event{kind: KindTimer, label: t.name, fn: func() { w.Wake(nil) }, tm: tm})
	_, err := s.wait(t, ctx, w)
	if err != nil {
		tm.stop()
	}
	return err
}

// Waiter is a one-shot rendezvous between a task that waits (Wait) and the
// event or task that wakes it (Wake). Whichever comes first of the Wake and
// the cancellation of the waiting task's ctx decides the outcome; the
// scheduler, not Go's select, orders the two. Like its Scheduler, a Waiter
// is used by one task or event at a time.
type Waiter struct {
	s     *Scheduler
	label string
	about fmt.Stringer // describes the wait when label is empty
	woken bool         // Wake was called or the wait was given up
	task  *task
	val   any
	err   error
}

// NewSignal returns a corfu.Signal: a Waiter whose Fire is Wake(nil) and
// whose Wait is the scheduler's.
func (s *Scheduler) NewSignal(label string) corfu.Signal { return &signal{w: s.NewWaiter(label)} }

// signal is a Waiter as a corfu.Signal.
type signal struct{ w *Waiter }

func (g *signal) Fire() bool { return g.w.Wake(nil) }

func (g *signal) Wait(ctx context.Context) error {
	_, err := g.w.s.Wait(ctx, g.w)
	return err
}

// NewWaiter returns a Waiter. label names what it waits for in deadlock
// reports.
func (s *Scheduler) NewWaiter(label string) *Waiter {
	return &Waiter{s: s, label: label}
}

// Wake hands v to the Waiter's task and schedules the task to resume at the
// current virtual time. It reports whether v was taken: it returns false if
// the Waiter was already woken or its wait was given up (its ctx was done).
// If no task waits yet, the next Wait returns v at once.
func (w *Waiter) Wake(v any) bool {
	if w.woken || w.s.closed {
		return false
	}
	w.woken = true
	w.val = v
	if t := w.task; t != nil {
		w.s.unpoll(t)
		w.s.wake(t)
	}
	return true
}

// Woken reports whether the Waiter was woken or given up.
func (w *Waiter) Woken() bool { return w.woken }

// Wait parks the calling task until w is woken or ctx is done. It returns
// the value given to Wake, or ctx.Err() if ctx was done first, or ErrStopped
// if the scheduler was closed. A Waiter serves one Wait. It must be called
// from a task.
func (s *Scheduler) Wait(ctx context.Context, w *Waiter) (any, error) {
	t := s.blockingCall("Wait")
	return s.wait(t, ctx, w)
}

func (s *Scheduler) wait(t *task, ctx context.Context, w *Waiter) (any, error) {
	if w.task != nil {
		panic("sim: Waiter used by two waits")
	}
	if w.woken {
		return w.val, w.err
	}
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			w.woken = true
			w.err = ctx.Err()
			return nil, w.err
		default:
		}
	}
	w.task = t
	t.park++
	t.waiter = w
	t.waitCtx = ctx
	if c, ok := ctx.(*timeoutCtx); ok && c.pure && c.s == s {
		c.register(t)
	} else if done != nil {
		s.liveDone[t.slot] = done
		s.polled++
	}
	stopped := s.park(t)
	t.waiter = nil
	t.waitCtx = nil
	if stopped {
		return nil, ErrStopped
	}
	return w.val, w.err
}

// blockingCall returns the task making a blocking call. Called outside a
// task it panics. Once the scheduler is closed, a task that was stopped
// (its pending call returned ErrStopped) and blocks again is ended with
// runtime.Goexit, so Close cannot hang on a task that ignores ErrStopped.
func (s *Scheduler) blockingCall(what string) *task {
	t := s.current
	if t == nil {
		panic("sim: " + what + " called outside a task")
	}
	if s.closed {
		runtime.Goexit()
	}
	return t
}

// park hands the baton back and blocks until the scheduler resumes t. It
// reports whether the scheduler was closed meanwhile.
func (s *Scheduler) park(t *task) bool {
	t.state = taskParked
	s.yield <- struct{}{}
	<-t.ch
	return s.closed
}

// wake schedules a parked task to resume at the current time.
func (s *Scheduler) wake(t *task) {
	s.schedule(0, event{kind: KindResume, label: t.name, task: t})
}

// Stop makes the current Run, RunUntil or RunFor return nil after the event
// being processed. It may be called from tasks and events.
func (s *Scheduler) Stop() { s.stopReq = true }

// Step processes the next event, running a task until it parks or exits if
// the event resumes one. It reports whether an event was processed: false
// if none is queued, the simulation failed (see Err), the step budget is used
// up, or the scheduler is closed.
func (s *Scheduler) Step() bool {
	s.checkOwner("Step")
	if s.closed || s.err != nil {
		return false
	}
	s.mayCancel = true
	s.scan()
	if s.head() == nil || s.budgetUsed() {
		return false
	}
	s.step()
	return true
}

// Run processes events until none is left, Stop is called, or the
// simulation fails. It returns an error wrapping ErrDeadlock if tasks are
// still parked when the queue runs dry, and one wrapping ErrStepBudget if
// MaxSteps is reached.
func (s *Scheduler) Run() error {
	return s.run(-1)
}

// RunUntil processes the events due up to and including t, then advances
// the clock to t (unless Stop was called). Parked tasks left without
// events are not an error here: the caller may still wake them.
func (s *Scheduler) RunUntil(t time.Time) error {
	limit := int64(t.Sub(epoch))
	if limit < s.now {
		limit = s.now
	}
	return s.run(limit)
}

// RunFor runs the simulation for d of virtual time; see RunUntil.
func (s *Scheduler) RunFor(d time.Duration) error {
	return s.RunUntil(s.Now().Add(d))
}

func (s *Scheduler) run(limit int64) error {
	s.checkOwner("Run")
	if s.closed {
		return ErrStopped
	}
	s.stopReq = false
	s.mayCancel = true
	for s.err == nil && !s.stopReq {
		s.scan()
		e := s.head()
		if e == nil || limit >= 0 && e.at > limit {
			break
		}
		if s.budgetUsed() {
			break
		}
		s.step()
	}
	if s.err != nil {
		return s.err
	}
	if s.stopReq {
		return nil
	}
	if limit >= 0 {
		s.now = limit
		return nil
	}
	if parked := s.parked(); parked != "" {
		return fmt.Errorf("%w at %v (+%v): nothing can wake %s", ErrDeadlock, s.Now(), s.Elapsed(), parked)
	}
	return nil
}

func (s *Scheduler) budgetUsed() bool {
	max := s.MaxSteps
	if max == 0 {
		max = DefaultMaxSteps
	}
	if s.steps < max {
		return false
	}
	s.err = fmt.Errorf("%w: %d steps at %v (+%v); parked: %s", ErrStepBudget, s.steps, s.Now(), s.Elapsed(), s.parked())
	return true
}

func (s *Scheduler) checkOwner(what string) {
	if s.current != nil {
		panic("sim: " + what + " called from a task")
	}
}

// head discards stopped events at the front of the queue and returns the
// next live one, or nil.
func (s *Scheduler) head() *event {
	for len(s.q) > 0 {
		e := &s.q[0]
		if e.tm == nil || !e.tm.stopped {
			return e
		}
		s.q.pop()
	}
	return nil
}

// step processes the event at the head of the queue, which must be live.
func (s *Scheduler) step() {
	e := s.q.pop()
	if e.tm != nil {
		e.tm.fired = true
	}
	if e.at < s.now {
		panic("sim: virtual time went backwards")
	}
	s.now = e.at
	s.steps++
	s.record(e.seq, e.kind, e.label, e.detail)
	switch e.kind {
	case KindStart:
		s.start(e.task)
		s.mayCancel = true
	case KindResume:
		s.resume(e.task)
		s.mayCancel = true
	default:
		s.call(&e)
	}
	s.scan()
}

// call runs an inline event, turning a panic into the run's error.
func (s *Scheduler) call(e *event) {
	defer func() {
		if r := recover(); r != nil {
			s.fail(&PanicError{Task: e.kind.String() + " " + e.label, Value: r, Stack: debug.Stack()})
		}
	}()
	if e.kind == KindTimeout || e.kind == KindFunc {
		s.mayCancel = true
	}
	e.fn()
}

// record feeds an event to the trace hash and the Trace hook.
func (s *Scheduler) record(seq uint64, k Kind, label, detail string) {
	h := fnvUint64(s.hash, uint64(s.now))
	h = fnvUint64(h, seq)
	h = (h ^ uint64(k)) * fnvPrime
	h = fnvUint64(h, uint64(len(label)))
	s.hash = fnvString(h, label)
	if s.Trace != nil {
		s.Trace(Event{Time: s.Now(), Seq: seq, Kind: k, Label: label, Detail: detail})
	}
}

// hashBytes feeds message bytes to the trace hash.
func (s *Scheduler) hashBytes(b []byte) {
	h := fnvUint64(s.hash, uint64(len(b)))
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	s.hash = h
}

// start runs a new task until it parks or exits.
func (s *Scheduler) start(t *task) {
	s.nextID++
	t.id = s.nextID
	t.ch = make(chan struct{})
	t.state = taskRunning
	t.slot = len(s.live)
	s.live = append(s.live, t)
	s.liveDone = append(s.liveDone, nil)
	s.current = t
	go s.runTask(t)
	<-s.yield
	s.current = nil
}

// resume hands the baton to a parked task until it parks again or exits.
func (s *Scheduler) resume(t *task) {
	t.state = taskRunning
	s.current = t
	t.ch <- struct{}{}
	<-s.yield
	s.current = nil
}

func (s *Scheduler) runTask(t *task) {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				s.fail(&PanicError{Task: "task " + t.name, Value: r, Stack: debug.Stack()})
			} else if !s.closed {
				s.fail(fmt.Errorf("sim: task %s called runtime.Goexit (t.FailNow inside a task?)", t.name))
			}
		}
		t.state = taskDone
		s.finished++
		s.yield <- struct{}{}
	}()
	t.f()
	returned = true
}

func (s *Scheduler) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// scan wakes, in task start order, every task parked on a context of its
// own making (not a pure timeoutCtx) that is done, and sweeps finished
// tasks from the live list. It runs after each step that may have
// cancelled a context (a task ran, a deadline passed, a scheduled function
// ran), which is how cancellation from anywhere reaches a waiting task at a
// well-defined point of the event order. Its cost is one non-blocking
// channel receive per such task.
func (s *Scheduler) scan() {
	if !s.mayCancel {
		return
	}
	s.mayCancel = false
	for i, done := range s.liveDone {
		if s.polled == 0 {
			break
		}
		if done == nil {
			continue
		}
		select {
		case <-done:
		default:
			continue
		}
		s.cancelWait(s.live[i])
	}
	if s.finished > len(s.live)/2 {
		s.sweep()
	}
}

// cancelWait gives up t's wait, whose ctx is done, and schedules t to
// resume.
func (s *Scheduler) cancelWait(t *task) {
	s.unpoll(t)
	w := t.waiter
	w.woken = true
	w.err = t.waitCtx.Err()
	s.wake(t)
}

// unpoll stops polling t's ctx.
func (s *Scheduler) unpoll(t *task) {
	if s.liveDone[t.slot] != nil {
		s.liveDone[t.slot] = nil
		s.polled--
	}
}

// sweep drops finished tasks from the live list.
func (s *Scheduler) sweep() {
	n := 0
	for i, t := range s.live {
		if t.state == taskDone {
			continue
		}
		t.slot = n
		s.live[n] = t
		s.liveDone[n] = s.liveDone[i]
		n++
	}
	clear(s.live[n:])
	clear(s.liveDone[n:])
	s.live = s.live[:n]
	s.liveDone = s.liveDone[:n]
	s.finished = 0
}

// parked lists the live parked tasks and what they wait for.
func (s *Scheduler) parked() string {
	var b strings.Builder
	for _, t := range s.live {
		if t.state != taskParked {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.name)
		if w := t.waiter; w != nil {
			b.WriteString(" (")
			if w.label == "" && w.about != nil {
				b.WriteString(w.about.String())
			} else {
				b.WriteString(w.label)
			}
			b.WriteString(")")
		}
	}
	return b.String()
}

// Close stops the simulation. Each parked task is resumed in turn, in start
// order, and its pending blocking call returns ErrStopped; if it blocks
// again it is ended with runtime.Goexit. Tasks that have not started never
// run, and queued events are discarded. After Close, Go, AfterFunc and
// Schedule do nothing and Run returns ErrStopped. Close must not be called
// from a task.
func (s *Scheduler) Close() {
	s.checkOwner("Close")
	if s.closed {
		return
	}
	s.closed = true
	for _, t := range s.live {
		if t.state != taskParked {
			continue
		}
		s.current = t
		t.ch <- struct{}{}
		<-s.yield
		s.current = nil
	}
	s.live = nil
	s.liveDone = nil
	s.q = nil
}

// FNV-64a, inlined so that hashing an event does not allocate.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvUint64(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// splitmix is the SplitMix64 finalizer; it spreads seeds over all 64 bits.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
