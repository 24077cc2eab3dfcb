package corfu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Hook observes what a Client does, for metrics. A Hook may be any value:
// wherever something happens that a hook can observe, the client calls
// every hook of Config.Hooks that implements the matching interface
// (HookAppend, HookRead, HookRetry, HookRefresh, HookReconfigure,
// HookDetector), and ignores the others. A hook implements only what it
// cares about, and a client with no hooks does no work for them: it does
// not even read its clock.
//
// Hooks are called synchronously, on the task of the operation they report
// and before it returns, possibly from many goroutines at once: they must
// be safe for concurrent use, quick, and must not block or call back into
// the Client. A hook that needs more time copies what it needs and does the
// rest elsewhere. Durations are measured with the client's Env (Config.Env),
// so that in the simulator they are virtual and reproducible.
//
// Outcome names an event's error for a metric label.
type Hook any

// HookAppend is called once per Append call, as it returns.
type HookAppend interface {
	OnAppend(AppendEvent)
}

// AppendEvent is one Append call.
type AppendEvent struct {
	Addr    storage.Address // the entry's address, if Err is nil
	Bytes   int             // the payload's length
	Streams int             // how many streams the entry was appended to
	// Tokens is how many addresses the append was handed: one more than
	// the races it lost to other writers or to fills (0 if it got none).
	Tokens int
	Took   time.Duration // from the call to its return
	Err    error         // what Append returned
}

// HookRead is called once per Read call, as it returns (and so once per
// address that Range, Follow and the stream readers read).
type HookRead interface {
	OnRead(ReadEvent)
}

// ReadEvent is one Read call.
type ReadEvent struct {
	Addr  storage.Address // the address read
	Bytes int             // the payload's length, if Err is nil
	Took  time.Duration   // from the call to its return, a hole's wait and fill included
	Err   error           // what Read returned: ErrJunk, ErrUnwritten... are outcomes too
}

// HookRetry is called each time a request is tried again after it got no
// answer (a timeout, an unreachable server) or was told to wait (a
// sequencer not ready yet), before the client backs off.
type HookRetry interface {
	OnRetry(RetryEvent)
}

// RetryEvent is one retry of a request.
type RetryEvent struct {
	Attempt int           // how many attempts failed so far: 1 at the first retry
	Delay   time.Duration // the backoff before the next attempt
	Err     error         // why the last attempt failed
}

// HookRefresh is called each time the client fetches the projection from
// the layout servers because it needs a newer one (a server is sealed at a
// newer epoch), and once at Open. Calls that wait for a fetch already under
// way report nothing.
type HookRefresh interface {
	OnRefresh(RefreshEvent)
}

// RefreshEvent is one projection refresh.
type RefreshEvent struct {
	Min   storage.Epoch // the epoch the client needed at least
	Epoch storage.Epoch // the epoch of the projection installed, if Err is nil
	Took  time.Duration // the fetch, retries and any recovery included
	Err   error
}

// HookReconfigure is called once per Reconfigure call, as it returns:
// those of the caller, and those the client starts by itself (to recover a
// restarted sequencer, a blank unit or an unfinished epoch) or for a
// Detector or a Rebuild.
type HookReconfigure interface {
	OnReconfigure(ReconfigureEvent)
}

// ReconfigureEvent is one Reconfigure call.
type ReconfigureEvent struct {
	From  storage.Epoch // the epoch of the client's projection at the call
	Epoch storage.Epoch // the epoch of the projection returned, if any
	Took  time.Duration
	Err   error // what Reconfigure returned (ErrReconfigLost: another client's won)
}

// HookDetector is called with each DetectorEvent of a Detector running on
// the client, as DetectorConfig.OnEvent is.
type HookDetector interface {
	OnDetectorEvent(DetectorEvent)
}

// hookSet is Config.Hooks sorted by interface at Open; a nil slice costs
// its call sites a length check.
type hookSet struct {
	append   []HookAppend
	read     []HookRead
	retry    []HookRetry
	refresh  []HookRefresh
	reconfig []HookReconfigure
	detector []HookDetector
}

// newHookSet sorts hooks by the interfaces they implement, and reports a
// hook that implements none (a misspelt method, say).
func newHookSet(hooks []Hook) (hookSet, error) {
	var s hookSet
	for _, h := range hooks {
		used := false
		if h, ok := h.(HookAppend); ok {
			s.append, used = append(s.append, h), true
		}
		if h, ok := h.(HookRead); ok {
			s.read, used = append(s.read, h), true
		}
		if h, ok := h.(HookRetry); ok {
			s.retry, used = append(s.retry, h), true
		}
		if h, ok := h.(HookRefresh); ok {
			s.refresh, used = append(s.refresh, h), true
		}
		if h, ok := h.(HookReconfigure); ok {
			s.reconfig, used = append(s.reconfig, h), true
		}
		if h, ok := h.(HookDetector); ok {
			s.detector, used = append(s.detector, h), true
		}
		if !used {
			return hookSet{}, fmt.Errorf("%w: hook %T implements no Hook interface", ErrInvalidConfig, h)
		}
	}
	return s, nil
}

func (s *hookSet) onAppend(ev AppendEvent) {
	for _, h := range s.append {
		h.OnAppend(ev)
	}
}

func (s *hookSet) onRead(ev ReadEvent) {
	for _, h := range s.read {
		h.OnRead(ev)
	}
}

func (s *hookSet) onRetry(ev RetryEvent) {
	for _, h := range s.retry {
		h.OnRetry(ev)
	}
}

func (s *hookSet) onReconfigure(ev ReconfigureEvent) {
	for _, h := range s.reconfig {
		h.OnReconfigure(ev)
	}
}

func (s *hookSet) onDetectorEvent(ev DetectorEvent) {
	for _, h := range s.detector {
		h.OnDetectorEvent(ev)
	}
}

// fetchObserved is fetchProjection, reported to the refresh hooks.
func (c *Client) fetchObserved(ctx context.Context, min storage.Epoch) (*projection.Projection, error) {
	if len(c.hooks.refresh) == 0 {
		return c.fetchProjection(ctx, min)
	}
	start := c.env.Now()
	p, err := c.fetchProjection(ctx, min)
	ev := RefreshEvent{Min: min, Took: c.env.Now().Sub(start), Err: err}
	if p != nil && err == nil {
		ev.Epoch = p.Epoch
	}
	for _, h := range c.hooks.refresh {
		h.OnRefresh(ev)
	}
	return p, err
}

// outcomes names the errors Outcome tells apart, in the order it tries
// them: an error that matches several (retries exhausted on a timeout) is
// named by the first.
var outcomes = []struct {
	err  error
	name string
}{
	{ErrUnknownOutcome, "unknown_outcome"},
	{ErrClosed, "closed"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "deadline"},
	{ErrInvalidConfig, "invalid"},
	{ErrNilData, "invalid"},
	{ErrTooLarge, "invalid"},
	{ErrInvalidStreams, "invalid"},
	{ErrInvalidAddress, "invalid"},
	{ErrJunk, "junk"},
	{ErrUnwritten, "unwritten"},
	{ErrTrimmed, "trimmed"},
	{ErrBeyondTail, "beyond_tail"},
	{ErrWritten, "written"},
	{ErrRetriesExhausted, "retries_exhausted"},
	{ErrUnavailable, "unavailable"},
	{ErrReconfigLost, "reconfig_lost"},
	{ErrNoQuorum, "no_quorum"},
	{ErrSealIncomplete, "seal_incomplete"},
	{ErrRebuildConflict, "rebuild_conflict"},
	{ErrDiverged, "diverged"},
	{ErrCorruptEntry, "corrupt"},
	{ErrCorrupt, "corrupt"},
	{ErrBlank, "blank"},
	{ErrSealed, "sealed"},
	{ErrNotReady, "not_ready"},
	{ErrNoSegment, "no_segment"},
	{errHopTimeout, "timeout"},
	{transport.ErrUnreachable, "unreachable"},
	{transport.ErrMalformed, "malformed"},
}

// Outcome names err, an error of a hook's event or of a Client call, for
// a metric's label: "ok" for nil; else "unknown_outcome", "closed",
// "canceled", "deadline", "invalid" (a bad argument), "junk",
// "unwritten", "trimmed", "beyond_tail", "written",
// "retries_exhausted", "unavailable", "reconfig_lost", "no_quorum",
// "seal_incomplete", "rebuild_conflict", "diverged", "corrupt", "blank",
// "sealed", "not_ready", "no_segment", "timeout" (a request that got no
// answer within Config.RPCTimeout), "unreachable" or "malformed", for the
// first of those errors that err matches (errors.Is) in that order; and
// "other". The names are few and stable.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o.name
		}
	}
	return "other"
}
