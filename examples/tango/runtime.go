package tango

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// ObjectID names an object. It is also the ID of the object's stream, its
// home: the stream its updates are appended to. IDs go up to MaxObjectID;
// the streams above it are the runtime's (CheckpointStream, ControlStream).
type ObjectID = corfu.StreamID

const (
	// MaxObjectID is the largest ObjectID.
	MaxObjectID ObjectID = 1<<62 - 1
	// ControlStream is the stream every commit and decision record joins,
	// besides the streams of the objects the transaction writes. An entry
	// of ControlStream is a runtime record; any other entry of an object's
	// stream is a plain update. Applications must not append to it.
	ControlStream corfu.StreamID = 1 << 63
	checkpointBit corfu.StreamID = 1 << 62
)

// CheckpointStream returns the stream that holds the checkpoints of
// object id.
func CheckpointStream(id ObjectID) corfu.StreamID { return id | checkpointBit }

// Errors of the runtime. Those of the log (corfu's) come through wrapped.
var (
	// ErrCorrupt reports an entry of an object's stream that does not
	// decode as an operation of the object, or a runtime record that does
	// not decode. The runtime reports each such entry once (a *CorruptError
	// from the sync that met it) and steps over it.
	ErrCorrupt = errors.New("tango: corrupt entry")
	// ErrInvalidSpec reports an object that cannot be registered.
	ErrInvalidSpec = errors.New("tango: invalid object")
	// ErrNotHosted reports an object that the runtime does not host.
	ErrNotHosted = errors.New("tango: object not hosted by this runtime")
	// ErrUndecided reports a commit record whose decision a runtime could
	// not learn in time: it hosts an object the transaction writes but not
	// every object it read, and the decision record had not arrived. It is
	// returned as an *UndecidedError.
	ErrUndecided = errors.New("tango: transaction undecided")
)

// CorruptError reports an entry that does not decode (ErrCorrupt).
type CorruptError struct {
	Object ObjectID        // the object whose stream it is on (0 for a runtime record)
	Addr   storage.Address // its address
	Cause  error
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("tango: corrupt entry at address %d (object %d): %v", e.Addr, e.Object, e.Cause)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// UndecidedError reports a runtime held up at the commit record at Commit
// (ErrUndecided): it could not decide it, and no decision record came
// within Options.DecisionWait. The objects it hosts stay as they were
// before that record until the decision arrives.
type UndecidedError struct{ Commit storage.Address }

// Error implements error.
func (e *UndecidedError) Error() string {
	return fmt.Sprintf("tango: waiting for the decision of the commit record at address %d", e.Commit)
}

// Is reports whether target is ErrUndecided.
func (e *UndecidedError) Is(target error) bool { return target == ErrUndecided }

// Defaults of Options.
const (
	DefaultMaxRetries   = 8
	DefaultBackoff      = time.Millisecond
	DefaultPoll         = 2 * time.Millisecond
	DefaultDecisionWait = 2 * time.Second
	DefaultChunkBytes   = 512 << 10
)

// Options tune a Runtime. The zero value takes every default.
type Options struct {
	// MaxRetries is how many times RunTx and ReadOnly run a transaction
	// again after a conflict. Default DefaultMaxRetries; a negative value
	// means never.
	MaxRetries int
	// Backoff is the first pause before a transaction runs again; it
	// doubles with each attempt, with jitter. Default DefaultBackoff.
	Backoff time.Duration
	// Poll is how often a caller waiting on the runtime (for another
	// caller's sync, or for a decision record) looks again; a wait for a
	// decision record looks again after Poll, then twice as long each time,
	// up to 64 times Poll. Default DefaultPoll.
	Poll time.Duration
	// DecisionWait bounds how long a sync waits for a decision record it
	// needs before failing with an *UndecidedError. Default
	// DefaultDecisionWait.
	DecisionWait time.Duration
	// ChunkBytes bounds the entries a checkpoint is written in. Default
	// DefaultChunkBytes.
	ChunkBytes int
	// FromLogStart makes a new runtime build its objects from the start of
	// the log rather than from their latest checkpoints: it saves looking
	// the checkpoints up (a few reads) and costs a replay of the whole
	// stream. A runtime that meets updates trimmed below it turns to the
	// checkpoints all the same.
	FromLogStart bool
	// Logger receives debug records. Default: discard.
	Logger *slog.Logger
}

func (o *Options) fill() {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	set(&o.Backoff, DefaultBackoff)
	set(&o.Poll, DefaultPoll)
	set(&o.DecisionWait, DefaultDecisionWait)
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	o.ChunkBytes = min(o.ChunkBytes, corfu.DefaultMaxEntryBytes-64)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Runtime hosts replicated objects on one client of the log, after Tango
// (SOSP 2013): every object is an in-memory view of its stream, built by
// applying the stream's entries in log order. An update appends an entry; a
// query first syncs every hosted object with the log's tail, so it sees
// every update acknowledged before it began (a linearizable read), and a
// stale read reads the view as it is. Transactions span objects (see
// RunTx); checkpoints let the log be trimmed (see Checkpoint).
//
// A Runtime is safe for concurrent use. Its syncs are serialized: a caller
// that finds one running waits for it, polling with the client's Env
// (Options.Poll), and reuses its result when it began after the caller
// did. It holds no lock while it waits on the log, so that it runs
// unchanged in the simulator.
type Runtime struct {
	c    *corfu.Client
	env  corfu.Env
	opts Options
	mut  mutants

	nonce  atomic.Uint64 // identifies this runtime's transactions; drawn at the first
	serial atomic.Uint64 // its count of transactions

	mu         sync.Mutex
	hosts      map[ObjectID]*host
	ids        []ObjectID                       // hosted objects, sorted
	readers    map[corfu.StreamID]*corfu.Stream // one per stream some hosted object reads
	streamIDs  []corfu.StreamID                 // sorted
	loaded     bool                             // hosts and readers are set up (see load)
	everLoaded bool
	pos        storage.Address                 // every entry below pos of a hosted stream is applied
	posEpoch   storage.Epoch                   // the epoch pos was taken in, or an earlier one
	buf        map[storage.Address]corfu.Entry // entries read and not applied yet (at or above pos)
	decisions  map[storage.Address]bool        // decision records seen, by commit address
	own        map[storage.Address]*ownCommit  // our own commit records not decided yet
	execs      map[storage.Address]func(objectState)
	stalled    bool // pos is a commit record waiting for its decision
	proj       *projection.Projection
	problems   []error           // corrupt entries met by the sync in progress
	redecide   []pendingDecision // decision records whose append failed, to retry
	limit      storage.Address   // a snapshot applies entries below limit only
	syncing    bool              // a sync holds the readers
	started    uint64            // syncs started
	lastOK     uint64            // the number of the last sync that succeeded
}

// ownCommit is one of our own commit records, at an address the runtime
// knows (its append returned it) or suspects (its append's outcome was
// unknown and the address could not be read), and its fate once decided.
// The runtime decides it when its replay gets there, whether or not Commit
// still waits, and then appends the decision record if the record needs
// one.
type ownCommit struct {
	id        txID
	streams   []corfu.StreamID // the commit record's, and its decision record's
	done      bool
	committed bool
	unknown   bool // the runtime cannot tell: rebuilt past it, or it is not ours
	conflict  *ConflictError
}

// New returns a runtime on client c, hosting no object yet.
func New(c *corfu.Client, opts Options) *Runtime {
	opts.fill()
	r := &Runtime{
		c: c, env: c.Env(), opts: opts,
		hosts: map[ObjectID]*host{}, readers: map[corfu.StreamID]*corfu.Stream{},
		buf: map[storage.Address]corfu.Entry{}, decisions: map[storage.Address]bool{},
		own: map[storage.Address]*ownCommit{}, execs: map[storage.Address]func(objectState){},
		limit: storage.MaxAddress,
	}
	r.mut = lookupMutants(r.env)
	return r
}

// Client returns the runtime's client.
func (r *Runtime) Client() *corfu.Client { return r.c }

// Position returns the runtime's position: every entry below it of the
// hosted objects' streams has been applied (or, for a commit record, found
// to have aborted).
func (r *Runtime) Position() storage.Address {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// Sync brings every hosted object up to date with the log: it applies
// every entry of their streams below a tail taken after Sync was called.
// Queries sync by themselves; Sync is for callers that read stale views
// afterwards.
//
// Errors: those of corfu.Stream.Sync (the log's); a *CorruptError for
// an entry that did not decode (applied as far as it goes, and not
// reported again); an *UndecidedError; and an error wrapping
// corfu.ErrTrimmed when updates an object needs were trimmed and no
// checkpoint covers them.
func (r *Runtime) Sync(ctx context.Context) error { return r.sync(ctx) }

// register adds h to the hosted objects. The next sync builds every object
// again, from its checkpoint and the log, the new one with the rest.
func (r *Runtime) register(h *host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.hosts[h.id]; ok {
		return fmt.Errorf("%w: object %d is hosted already", ErrInvalidSpec, h.id)
	}
	r.hosts[h.id] = h
	r.ids = append(r.ids, h.id)
	slices.Sort(r.ids)
	r.loaded = false
	return nil
}

// lockSync waits until no sync holds the readers and takes them. It
// returns the number of the sync it starts.
func (r *Runtime) lockSync(ctx context.Context) (uint64, error) {
	r.mu.Lock()
	for r.syncing {
		r.mu.Unlock()
		if err := r.env.Sleep(ctx, r.opts.Poll); err != nil {
			return 0, err
		}
		r.mu.Lock()
	}
	r.syncing = true
	r.started++
	n := r.started
	r.mu.Unlock()
	return n, nil
}

func (r *Runtime) unlockSync() {
	r.mu.Lock()
	r.syncing = false
	r.mu.Unlock()
}

// sync is Sync. A sync that another caller started after this one was
// called, and that succeeded, serves this one too.
func (r *Runtime) sync(ctx context.Context) error {
	r.mu.Lock()
	want := r.started + 1
	r.mu.Unlock()
	n, err := r.lockSync(ctx)
	if err != nil {
		return err
	}
	defer r.unlockSync()
	r.mu.Lock()
	reuse := r.lastOK >= want
	r.mu.Unlock()
	if reuse {
		return nil
	}
	if err := r.syncLocked(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	r.lastOK = n
	r.mu.Unlock()
	return nil
}

// errReload asks syncLocked to build every object again from its latest
// checkpoint: updates it has not applied were trimmed.
var errReload = errors.New("tango: reload from checkpoints")

// syncLocked syncs, holding the readers. It waits for a missing decision
// record for up to DecisionWait.
func (r *Runtime) syncLocked(ctx context.Context) error {
	r.retryDecisions(ctx)
	var deadline time.Time
	wait := r.opts.Poll
	reloads := 0
	for {
		err := r.syncRound(ctx)
		if errors.Is(err, errReload) {
			reloads++
			if reloads > 3 {
				return fmt.Errorf("tango: sync: %w: updates were trimmed below every checkpoint", corfu.ErrTrimmed)
			}
			r.opts.Logger.Debug("tango: updates trimmed, reloading from the checkpoints", "attempt", reloads)
			r.mu.Lock()
			r.loaded = false
			r.mu.Unlock()
			continue
		}
		if err != nil {
			return err
		}
		r.mu.Lock()
		stalled, at := r.stalled, r.pos
		problems := r.problems
		r.problems = nil
		r.mu.Unlock()
		if !stalled {
			return errors.Join(problems...)
		}
		// NB: a trim past the commit record that holds us up means the
		// checkpoints have decided it: its decision record may never come
		// (its writer rebuilt past it, say), so the objects are rebuilt
		// from the checkpoints.
		if m, err := r.c.TrimMark(ctx); err == nil && m > at {
			r.opts.Logger.Debug("tango: trimmed past the commit record we wait on, reloading", "commit", at, "mark", m)
			r.mu.Lock()
			r.loaded = false
			r.mu.Unlock()
			continue
		}
		now := r.env.Now()
		if deadline.IsZero() {
			deadline = now.Add(r.opts.DecisionWait)
		}
		if !now.Before(deadline) {
			return errors.Join(append(problems, &UndecidedError{Commit: at})...)
		}
		// NB: a decision record comes after a round trip of its writer's
		// at best; look again soon, then less and less often.
		if err := r.env.Sleep(ctx, min(wait, deadline.Sub(now))); err != nil {
			return err
		}
		wait = min(2*wait, 64*r.opts.Poll)
	}
}

// syncRound syncs every stream reader once and applies what it can. The
// readers must all sync under one projection: a tail reset makes a reader
// go back (see corfu.Stream.Sync), and the entries of all streams below the
// position are applied in log order only if every reader did so. They sync
// together (corfu.Client.SyncStreams), 63 at a time; a round of several
// such batches in which the client's epoch moved is run again.
func (r *Runtime) syncRound(ctx context.Context) error {
	r.mu.Lock()
	loaded := r.loaded
	r.mu.Unlock()
	if !loaded {
		if err := r.load(ctx); err != nil {
			return err
		}
	}
	for {
		epoch := r.c.Epoch()
		// NB: one tail query for up to 63 streams at a time (the 64th is
		// corfu's TrimStream), so that they all read up to one tail.
		const chunk = sequencer.MaxStreams - 1
		for lo := 0; lo < len(r.streamIDs); lo += chunk {
			ids := r.streamIDs[lo:min(lo+chunk, len(r.streamIDs))]
			readers := make([]*corfu.Stream, len(ids))
			before := make([]storage.Address, len(ids))
			for i, sid := range ids {
				readers[i] = r.readers[sid]
				before[i] = readers[i].Position()
			}
			found, err := r.c.SyncStreams(ctx, readers)
			if errors.Is(err, corfu.ErrTrimmed) {
				return errReload
			}
			if err != nil {
				return fmt.Errorf("tango: sync: %w", err)
			}
			proj := r.c.Projection()
			r.mu.Lock()
			r.rewindHosts(proj)
			for i, st := range readers {
				if st.Start() < before[i] {
					r.opts.Logger.Debug("tango: tail reset, going back", "stream", ids[i], "from", before[i], "to", st.Start())
					r.rewind(st.Start())
				}
				if r.missedTrim(ids[i], st) {
					r.mu.Unlock()
					return errReload
				}
				for _, e := range found[i] {
					r.take(e)
				}
			}
			r.mu.Unlock()
		}
		if len(r.streamIDs) > chunk && r.c.Epoch() != epoch {
			continue // NB: some readers synced under an older projection
		}
		proj := r.c.Projection()
		r.mu.Lock()
		target := storage.MaxAddress
		for _, st := range r.readers {
			target = min(target, st.Position())
		}
		if len(r.readers) == 0 {
			target = r.pos
		}
		r.proj = proj
		r.applyBelow(min(target, r.limit))
		// NB: the epoch the position was taken in, exactly: a checkpoint
		// at the position carries it, and a replica built from the
		// checkpoint goes back to the resets after it.
		for i, sid := range r.streamIDs {
			if e := r.readers[sid].Epoch(); i == 0 || e < r.posEpoch {
				r.posEpoch = e
			}
		}
		r.mu.Unlock()
		return nil
	}
}

// take buffers an entry read from some stream, once.
func (r *Runtime) take(e corfu.Entry) {
	if _, ok := r.buf[e.Address]; ok || e.Address < r.pos {
		return
	}
	r.buf[e.Address] = e
	if !e.In(ControlStream) {
		return
	}
	if k, ok := recordKind(e.Data); ok && k == kindDecision {
		d, err := decodeDecision(e.Data)
		if err != nil {
			return // reported when applied
		}
		if _, seen := r.decisions[d.Commit]; !seen {
			r.decisions[d.Commit] = d.Committed
		}
	}
}

// rewind follows a reader that went back to a tail reset's tail (see
// projection.Reset): the addresses from tail on were handed out again, so
// entries will appear there below the position. Each host goes back by
// its own epoch (see rewindHosts). The caller holds mu.
func (r *Runtime) rewind(tail storage.Address) {
	r.pos = min(r.pos, tail)
}

// rewindHosts moves every host back to the tail of any tail reset of proj
// after its epoch that lies below its next entry, and the position with
// it. The caller holds mu.
func (r *Runtime) rewindHosts(proj *projection.Projection) {
	for _, id := range r.ids {
		h := r.hosts[id]
		if next := proj.Rewind(h.next, h.epoch); next < h.next {
			r.opts.Logger.Debug("tango: tail reset, an object goes back", "object", id, "from", h.next, "to", next)
			h.next = next
			r.pos = min(r.pos, next)
		}
		h.epoch = max(h.epoch, proj.Epoch)
	}
}

// applyBelow applies the buffered entries below target in log order, and
// moves the position to target; it stops at a commit record it cannot
// decide yet (r.stalled).
func (r *Runtime) applyBelow(target storage.Address) {
	var addrs []storage.Address
	for a := range r.buf {
		if a < target {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	r.stalled = false
	for _, a := range addrs {
		r.pos = a
		if !r.apply(r.buf[a]) {
			r.stalled = true
			return
		}
		delete(r.buf, a)
	}
	r.pos = max(r.pos, target)
	for a, own := range r.own {
		if a < r.pos {
			// NB: passed without meeting it: not ours, or in a checkpoint.
			r.opts.Logger.Debug("tango: our commit record passed unseen", "addr", a, "pos", r.pos)
			own.done, own.unknown = true, true
			delete(r.own, a)
		}
	}
	for c := range r.decisions {
		if c < r.pos {
			delete(r.decisions, c) // NB: its commit record is behind us
		}
	}
}

// apply applies one entry to every hosted object it concerns, and reports
// false if it is a commit record that cannot be decided yet.
func (r *Runtime) apply(e corfu.Entry) bool {
	if e.In(ControlStream) {
		k, _ := recordKind(e.Data)
		switch k {
		case kindCommit:
			rec, err := decodeCommit(e.Data)
			if err != nil {
				r.problem(&CorruptError{Addr: e.Address, Cause: err})
				return true
			}
			return r.applyCommit(e.Address, rec)
		case kindDecision:
			if _, err := decodeDecision(e.Data); err != nil {
				r.problem(&CorruptError{Addr: e.Address, Cause: err})
			}
			return true
		}
		r.problem(&CorruptError{Addr: e.Address, Cause: errRecord})
		return true
	}
	f := r.execs[e.Address]
	delete(r.execs, e.Address)
	for _, id := range r.ids {
		h := r.hosts[id]
		if e.Address < h.next || !h.reads(e.Streams...) {
			continue
		}
		if f != nil && h.id == homeOf(e) {
			f(h.state)
		}
		r.applyOp(h, e.Address, e.Data)
		h.next = e.Address + 1
	}
	return true
}

// homeOf returns the first stream of a plain update, the object it was
// appended for.
func homeOf(e corfu.Entry) corfu.StreamID {
	if len(e.Streams) == 0 {
		return 0
	}
	return e.Streams[0]
}

// applyOp applies one encoded operation to h at address a.
func (r *Runtime) applyOp(h *host, a storage.Address, op []byte) {
	keys, whole, err := h.state.apply(op)
	if err != nil {
		r.problem(&CorruptError{Object: h.id, Addr: a, Cause: err})
		return
	}
	h.note(a, keys, whole)
}

func (r *Runtime) problem(err error) {
	r.opts.Logger.Warn("tango: skipping an entry", "err", err)
	r.problems = append(r.problems, err)
}

// applyCommit decides the commit record at a and, if it committed, applies
// its writes to the hosted objects it writes.
func (r *Runtime) applyCommit(a storage.Address, rec *commitRecord) bool {
	own := r.own[a]
	if own != nil && own.id != rec.TxID {
		// NB: another transaction's record at the address ours might have
		// had: ours is not in the log.
		r.opts.Logger.Debug("tango: our commit record is not in the log", "addr", a)
		own.done, own.unknown = true, true
		delete(r.own, a)
		own = nil
	}
	var targets []*host
	for _, w := range rec.Writes {
		for _, id := range r.ids {
			if h := r.hosts[id]; h.reads(w.Object) && a >= h.next && !slices.Contains(targets, h) {
				targets = append(targets, h)
			}
		}
	}
	if len(targets) == 0 && own == nil {
		return true // none of ours: nothing to decide
	}
	committed, conflict, ok := r.decide(a, rec)
	if !ok && len(targets) == 0 {
		// NB: ours, but this runtime no longer holds what it read as of a
		// (it was rebuilt from a later checkpoint): nothing here depends
		// on the decision, and the writer cannot learn it.
		r.opts.Logger.Debug("tango: our commit record cannot be decided here", "addr", a)
		own.done, own.unknown = true, true
		delete(r.own, a)
		return true
	}
	if !ok {
		return false
	}
	if own != nil {
		own.done, own.committed, own.conflict = true, committed, conflict
		delete(r.own, a)
		r.opts.Logger.Debug("tango: our commit record decided", "addr", a, "committed", committed)
		if rec.Decision {
			r.redecide = append(r.redecide, pendingDecision{decisionRecord{Commit: a, Committed: committed}, own.streams})
		}
	}
	if !committed {
		return true
	}
	for _, w := range rec.Writes {
		for _, h := range targets {
			if !h.reads(w.Object) {
				continue
			}
			for _, op := range w.Ops {
				r.applyOp(h, a, op)
			}
		}
	}
	for _, h := range targets {
		h.next = a + 1
	}
	return true
}

// decide decides the commit record at a: it commits if none of the
// objects and keys it read was written, by a plain update or a committed
// transaction, between the read and a. A runtime decides on its own if it
// holds every object read as of a; otherwise it takes the decision record
// that the transaction's writer appends. ok is false when neither is
// possible yet.
func (r *Runtime) decide(a storage.Address, rec *commitRecord) (committed bool, conflict *ConflictError, ok bool) {
	local := true
	for _, it := range rec.Reads {
		if h := r.hosts[it.Object]; h == nil || h.next > a {
			local = false // NB: not hosted, or its state is past a
		}
	}
	if !local && !r.mut.ReplayWithoutDecision {
		d, ok := r.decisions[a]
		return d, nil, ok
	}
	if r.mut.SkipReadValidation {
		return true, nil, true
	}
	for _, it := range rec.Reads {
		h := r.hosts[it.Object]
		if h == nil || h.next > a {
			continue // mutant: what this runtime does not hold counts as unchanged
		}
		if w := h.lastFor(it); w > r.effectivePos(it, a) {
			return false, &ConflictError{Object: it.Object, Key: it.Key, Whole: it.Whole, Read: it.Pos, At: w - 1, Commit: a}, true
		}
	}
	return true, nil, true
}

// effectivePos returns the position a read of a commit record at a was
// made at, as the log stands: its position, or the tail of a tail reset
// after the read's epoch and before a, whichever is lower (the reset
// handed the addresses from its tail on out again, and the entries written
// there came after the read). Every runtime that reads a holds a
// projection that lists those resets, so all decide alike.
func (r *Runtime) effectivePos(it readItem, a storage.Address) storage.Address {
	pos := it.Pos
	if r.proj == nil {
		return pos
	}
	for _, rs := range r.proj.Resets {
		if rs.Epoch > it.Epoch && rs.Tail <= a {
			pos = min(pos, rs.Tail)
		}
	}
	return pos
}

// missedTrim reports whether the last Sync of stream sid stepped over a
// trimmed entry that some object reading sid has not applied. The caller
// holds mu.
func (r *Runtime) missedTrim(sid corfu.StreamID, st *corfu.Stream) bool {
	t := st.TrimmedBelow()
	if t == 0 {
		return false
	}
	for _, h := range r.hosts {
		if h.reads(sid) && t > h.next {
			return true
		}
	}
	return false
}

// setReaders makes one stream reader per stream the hosted objects read,
// at the lowest next entry of the objects reading it, taken in the oldest
// of their epochs, so that it goes back at least as far as any of them
// needs after a tail reset (each applies only what lies at or above its
// next entry). The caller holds mu.
func (r *Runtime) setReaders() {
	r.readers = map[corfu.StreamID]*corfu.Stream{}
	r.streamIDs = nil
	type at struct {
		pos   storage.Address
		epoch storage.Epoch
	}
	from := map[corfu.StreamID]at{}
	for _, id := range r.ids {
		h := r.hosts[id]
		for _, s := range h.streams {
			f, ok := from[s]
			if !ok {
				f = at{h.next, h.epoch}
			}
			from[s] = at{min(f.pos, h.next), min(f.epoch, h.epoch)}
		}
	}
	for s := range from {
		r.streamIDs = append(r.streamIDs, s)
	}
	slices.Sort(r.streamIDs)
	r.pos, r.posEpoch = storage.MaxAddress, 0
	for i, s := range r.streamIDs {
		r.readers[s] = r.c.StreamAt(s, from[s].pos, from[s].epoch)
		r.pos = min(r.pos, from[s].pos)
		if i == 0 || from[s].epoch < r.posEpoch {
			r.posEpoch = from[s].epoch
		}
	}
	if len(r.streamIDs) == 0 {
		r.pos = 0
	}
	r.buf = map[storage.Address]corfu.Entry{}
	r.decisions = map[storage.Address]bool{}
	r.stalled = false
}

// sortedKeys returns m's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
