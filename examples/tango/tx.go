package tango

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Errors of transactions.
var (
	// ErrConflict reports a transaction that aborted because something it
	// read changed before its commit record; it is returned as a
	// *ConflictError. Running it again may succeed (RunTx does).
	ErrConflict = errors.New("tango: transaction conflict")
	// ErrReadOnly reports an update inside a read-only transaction or a
	// snapshot.
	ErrReadOnly = errors.New("tango: read-only transaction")
	// ErrTxDone reports a transaction used after its commit or abort.
	ErrTxDone = errors.New("tango: transaction done")
	// ErrNotCommitted reports a transaction whose commit record never
	// reached the log (its append's outcome was unknown, and the address
	// it may have had holds something else): nothing of it happened, and
	// running it again is safe. RunTx does.
	ErrNotCommitted = errors.New("tango: commit record not in the log")
	// ErrOutcomeUnknown reports a transaction whose outcome the writer
	// cannot tell (an *OutcomeUnknownError): it may have committed.
	// Running it again may apply it twice.
	ErrOutcomeUnknown = errors.New("tango: transaction outcome unknown")
	// ErrTooManyObjects reports a transaction that writes more objects
	// than a commit record's streams can name.
	ErrTooManyObjects = errors.New("tango: transaction writes too many objects")
)

// MaxTxObjects is the largest number of objects one transaction may write:
// its commit record joins their streams and ControlStream.
const MaxTxObjects = sequencer.MaxStreams - 1

// ConflictError is a transaction's abort (ErrConflict): what it read of
// Object (the whole object, or Key) at position Read was written at address
// At, before the transaction's commit record at Commit (0 when the
// conflict was seen before any commit record was written).
type ConflictError struct {
	Object ObjectID
	Key    string
	Whole  bool
	Read   storage.Address
	At     storage.Address
	Commit storage.Address
}

// Error implements error.
func (e *ConflictError) Error() string {
	what := fmt.Sprintf("key %q", e.Key)
	if e.Whole {
		what = "the whole object"
	}
	where := "before commit"
	if e.Commit != 0 {
		where = fmt.Sprintf("before its commit record at %d", e.Commit)
	}
	return fmt.Sprintf("tango: transaction conflict: object %d, %s, read at position %d, written at address %d %s",
		e.Object, what, e.Read, e.At, where)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// OutcomeUnknownError reports a transaction whose commit record may be at
// Addr (ErrOutcomeUnknown), for the reason Cause.
type OutcomeUnknownError struct {
	Addr  storage.Address
	Cause error
}

// Error implements error.
func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("tango: transaction outcome unknown (commit record at address %d?): %v", e.Addr, e.Cause)
}

// Is reports whether target is ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the cause.
func (e *OutcomeUnknownError) Unwrap() error { return e.Cause }

// Tx is an optimistic transaction over the objects of one runtime (Tango's
// scheme). Its reads record what they read and where the runtime stood
// (its position); its updates are buffered; Commit appends one commit
// record with both to the streams of the objects it writes. Every runtime
// that hosts those objects meets the record in its log order and decides it
// the same way: it commits if nothing it read was written between the read
// and the record. A runtime that hosts a written object but not every
// object read cannot decide on its own, and takes the decision record that
// the transaction's writer appends after it.
//
// A Tx travels in a context (see RunTx); it is used by one goroutine at a
// time.
type Tx struct {
	rt       *Runtime
	id       txID
	readOnly bool
	snap     *Runtime // a snapshot's runtime, for ReadAt
	reads    []readItem
	seen     map[readKey]int // index into reads
	writes   map[ObjectID]*txWrites
	done     bool
}

type readKey struct {
	obj   ObjectID
	whole bool
	key   string
}

// txWrites is what a transaction wrote to one object, and the object's
// state with those writes applied once the transaction reads it.
type txWrites struct {
	ops    [][]byte
	shadow objectState
	base   storage.Address // the runtime's position when shadow was made
}

type txKey struct{}

func txFrom(ctx context.Context) *Tx {
	tx, _ := ctx.Value(txKey{}).(*Tx)
	return tx
}

// Begin starts a transaction and returns it with a context carrying it:
// the objects' methods called with that context read and write within it.
// Begin syncs the runtime first, so that the transaction starts from the
// log's tail. Commit or Abort it.
//
// Errors: those of Sync.
func (r *Runtime) Begin(ctx context.Context) (*Tx, context.Context, error) {
	if err := r.sync(ctx); err != nil {
		return nil, ctx, err
	}
	tx := &Tx{rt: r, id: txID{r.txNonce(), r.serial.Add(1)}, seen: map[readKey]int{}, writes: map[ObjectID]*txWrites{}}
	return tx, context.WithValue(ctx, txKey{}, tx), nil
}

// txNonce returns the runtime's nonce, drawing it (from the Env, never 0)
// at the first transaction: a runtime that runs none draws nothing, and
// leaves its client's random stream as it was.
func (r *Runtime) txNonce() uint64 {
	for r.nonce.Load() == 0 {
		r.nonce.CompareAndSwap(0, r.env.Rand().Uint64())
	}
	return r.nonce.Load()
}

// RunTx runs fn in a transaction and commits it, running it again (from a
// fresh sync) after a conflict, up to Options.MaxRetries times, with a
// growing pause between attempts. fn must do all its reads and writes
// through the context it is given; it may run several times, and should
// have no other effect. An error from fn aborts the transaction and is
// returned as it is.
//
// Errors: fn's; the last *ConflictError (errors.As) once the retries run
// out, wrapped; an *OutcomeUnknownError (retrying might apply it twice);
// those of Sync and corfu.Client.Append.
func (r *Runtime) RunTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return r.run(ctx, false, fn)
}

// ReadOnly runs fn in a read-only transaction: its reads see one
// consistent state of the objects, as of a position at or after the tail
// when ReadOnly was called, and it appends nothing. An update in it fails
// with ErrReadOnly. It runs fn again after a conflict, as RunTx does.
func (r *Runtime) ReadOnly(ctx context.Context, fn func(ctx context.Context) error) error {
	return r.run(ctx, true, fn)
}

func (r *Runtime) run(ctx context.Context, readOnly bool, fn func(ctx context.Context) error) error {
	var last error
	for attempt := 0; attempt <= r.opts.MaxRetries; attempt++ {
		if attempt > 0 {
			d := r.opts.Backoff << min(attempt-1, 6)
			d = d/2 + time.Duration(r.env.Rand().Int64N(int64(d/2)+1))
			if err := r.env.Sleep(ctx, d); err != nil {
				return err
			}
		}
		tx, tctx, err := r.Begin(ctx)
		if err != nil {
			return err
		}
		tx.readOnly = readOnly
		if err := fn(tctx); err != nil {
			tx.Abort()
			if !errors.Is(err, ErrConflict) {
				return err
			}
			last = err
			continue
		}
		err = tx.Commit(ctx)
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotCommitted) {
			return err
		}
		last = err
	}
	return fmt.Errorf("tango: transaction gave up after %d attempts: %w", r.opts.MaxRetries+1, last)
}

// ReadAt runs fn in a read-only transaction on a snapshot of the runtime's
// objects as of log position pos: the state with every update below pos
// applied and none at or above it. It rebuilds the snapshot from the
// objects' latest checkpoints at or below pos and the log after them, on
// the side, which costs about as much as a new replica.
//
// Errors: those of Sync; ErrReadOnly for an update; an error wrapping
// corfu.ErrTrimmed when the log below pos was trimmed and no checkpoint
// at or below pos is left; corfu.ErrBeyondTail if pos is above the tail.
func (r *Runtime) ReadAt(ctx context.Context, pos storage.Address, fn func(ctx context.Context) error) error {
	snap, err := r.snapshot(ctx, pos)
	if err != nil {
		return err
	}
	tx := &Tx{rt: r, readOnly: true, snap: snap}
	return fn(context.WithValue(ctx, txKey{}, tx))
}

// read is a query of h: outside a transaction, a sync and f under the
// lock; inside one, the transaction's read.
func (r *Runtime) read(ctx context.Context, h *host, it readItem, f func(objectState)) error {
	tx := txFrom(ctx)
	if tx == nil {
		if r.mut.QueryWithoutSync {
			r.mu.Lock()
			defer r.mu.Unlock()
			f(h.state) // mutant: a stale read
			return nil
		}
		if err := r.sync(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		f(h.state)
		return nil
	}
	return tx.read(h, it, f)
}

// read records a read of it and calls f with the transaction's view of h.
func (tx *Tx) read(h *host, it readItem, f func(objectState)) error {
	if tx.done {
		return ErrTxDone
	}
	if tx.snap != nil {
		tx.snap.mu.Lock()
		defer tx.snap.mu.Unlock()
		sh := tx.snap.hosts[h.id]
		if sh == nil {
			return fmt.Errorf("%w: object %d", ErrNotHosted, h.id)
		}
		f(sh.state)
		return nil
	}
	r := tx.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts[h.id] != h {
		return fmt.Errorf("%w: object %d (of another runtime)", ErrNotHosted, h.id)
	}
	w := tx.writes[h.id]
	if w != nil && w.shadow == nil {
		shadow, err := h.state.clone()
		if err != nil {
			return err
		}
		for _, op := range w.ops {
			if _, _, err := shadow.apply(op); err != nil {
				return err
			}
		}
		w.shadow, w.base = shadow, r.pos
	}
	it.Pos, it.Epoch = r.pos, r.posEpoch
	if w != nil {
		it.Pos = w.base // NB: what the copy was made from
	}
	k := readKey{it.Object, it.Whole, it.Key}
	if _, ok := tx.seen[k]; !ok {
		tx.seen[k] = len(tx.reads)
		tx.reads = append(tx.reads, it)
	}
	// NB: every read so far must still hold, so that fn sees one
	// consistent state; the commit record checks them again.
	if err := tx.validateLocked(); err != nil {
		return err
	}
	if w != nil {
		f(w.shadow)
	} else {
		f(h.state)
	}
	return nil
}

// validateLocked returns a *ConflictError if something the transaction
// read has been written since. The caller holds the runtime's lock.
func (tx *Tx) validateLocked() error {
	r := tx.rt
	if r.mut.SkipReadValidation {
		return nil
	}
	for _, it := range tx.reads {
		h := r.hosts[it.Object]
		if w := h.lastFor(it); w > it.Pos {
			return &ConflictError{Object: it.Object, Key: it.Key, Whole: it.Whole, Read: it.Pos, At: w - 1}
		}
	}
	return nil
}

// write buffers an encoded operation on h.
func (tx *Tx) write(h *host, op []byte) error {
	if tx.done {
		return ErrTxDone
	}
	if tx.readOnly {
		return fmt.Errorf("%w: update of object %d", ErrReadOnly, h.id)
	}
	r := tx.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts[h.id] != h {
		return fmt.Errorf("%w: object %d (of another runtime)", ErrNotHosted, h.id)
	}
	w := tx.writes[h.id]
	if w == nil {
		if len(tx.writes) == MaxTxObjects {
			return fmt.Errorf("%w: more than %d", ErrTooManyObjects, MaxTxObjects)
		}
		w = &txWrites{}
		tx.writes[h.id] = w
	}
	if w.shadow != nil {
		if _, _, err := w.shadow.apply(op); err != nil {
			return err
		}
	}
	w.ops = append(w.ops, op)
	return nil
}

// Abort ends the transaction without committing it. Nothing it wrote
// reaches the log.
func (tx *Tx) Abort() { tx.done = true }

// Commit ends the transaction. A read-only one (no update) commits if what
// it read still holds, and appends nothing. Otherwise Commit appends the
// commit record, syncs the runtime up to it to learn its decision, appends
// the decision record if some runtime may need it, and returns nil if it
// committed.
//
// Errors: a *ConflictError; ErrTxDone; ErrTooManyObjects; ErrNotCommitted
// (safe to run again); an *OutcomeUnknownError; those of Sync and
// corfu.Client.Append.
func (tx *Tx) Commit(ctx context.Context) error {
	if tx.done {
		return ErrTxDone
	}
	tx.done = true
	r := tx.rt
	if tx.snap != nil {
		return nil
	}
	if len(tx.writes) == 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return tx.validateLocked()
	}
	rec := tx.record()
	streams := make([]corfu.StreamID, 0, len(rec.Writes)+1)
	for _, w := range rec.Writes {
		streams = append(streams, w.Object)
	}
	streams = append(streams, ControlStream)
	// NB: the readers are held from the append until the record is known
	// as ours, so that no sync decides it unwatched.
	if _, err := r.lockSync(ctx); err != nil {
		return err
	}
	own := &ownCommit{id: rec.TxID, streams: streams}
	a, err := r.c.Append(ctx, rec.encode(), streams...)
	var unknown *corfu.UnknownOutcomeError
	if errors.As(err, &unknown) {
		a, err = r.resolve(ctx, unknown, rec.TxID)
		var ue *OutcomeUnknownError
		if errors.As(err, &ue) {
			// NB: the record may be there: the replay tells, and appends
			// its decision record if it is.
			r.mu.Lock()
			r.own[ue.Addr] = own
			r.mu.Unlock()
		}
	}
	if err != nil {
		r.unlockSync()
		return err
	}
	r.mu.Lock()
	r.own[a] = own
	r.mu.Unlock()
	r.unlockSync()
	for {
		// NB: the sync that decides the record queues its decision
		// record, and the next sync appends it (Flush here).
		if err := r.sync(ctx); err != nil {
			return &OutcomeUnknownError{Addr: a, Cause: err}
		}
		r.mu.Lock()
		done := own.done
		r.mu.Unlock()
		if done {
			break
		}
		// NB: the sync's tail may have been taken before the record was
		// in its stream's tail; the next one has it.
	}
	if own.unknown {
		return &OutcomeUnknownError{Addr: a, Cause: errors.New("the runtime was rebuilt from a checkpoint past the commit record")}
	}
	if rec.Decision {
		_ = r.flushDecisions(ctx) // NB: retried at every sync if it fails
	}
	if !own.committed {
		return own.conflict
	}
	return nil
}

// record builds the transaction's commit record.
func (tx *Tx) record() *commitRecord {
	rec := &commitRecord{TxID: tx.id, Reads: slices.Clone(tx.reads)}
	slices.SortFunc(rec.Reads, func(a, b readItem) int {
		if c := cmp.Compare(a.Object, b.Object); c != 0 {
			return c
		}
		if a.Whole != b.Whole {
			if a.Whole {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Key, b.Key)
	})
	objects := map[ObjectID]bool{}
	for _, it := range rec.Reads {
		objects[it.Object] = true
	}
	for _, id := range sortedKeys(tx.writes) {
		rec.Writes = append(rec.Writes, writeSet{Object: id, Ops: tx.writes[id].ops})
		objects[id] = true
	}
	// NB: a runtime that hosts one of the objects written but not every
	// object read cannot decide the record; with one object, or no read,
	// every runtime that meets the record can.
	rec.Decision = len(rec.Reads) > 0 && len(objects) > 1
	return rec
}

// resolve learns whether a commit record whose append's outcome was
// unknown is in the log: it reads the address the append may have taken
// (a read settles it for good: it completes the entry or fills the hole).
// The record there is ours if it carries our transaction's ID.
func (r *Runtime) resolve(ctx context.Context, u *corfu.UnknownOutcomeError, id txID) (storage.Address, error) {
	e, err := r.c.Read(ctx, u.Addr)
	switch {
	case err == nil:
		if e.Writer == r.c.Writer() && e.In(ControlStream) {
			if rec, derr := decodeCommit(e.Data); derr == nil && rec.TxID == id {
				return u.Addr, nil
			}
		}
		return 0, fmt.Errorf("%w: address %d holds another entry", ErrNotCommitted, u.Addr)
	case errors.Is(err, corfu.ErrJunk):
		return 0, fmt.Errorf("%w: address %d was filled", ErrNotCommitted, u.Addr)
	}
	return 0, &OutcomeUnknownError{Addr: u.Addr, Cause: err}
}

// pendingDecision is a decision record whose append failed, with the
// streams it goes to.
type pendingDecision struct {
	rec     decisionRecord
	streams []corfu.StreamID
}

// retryDecisions appends the decision records whose appends failed. The
// caller holds the readers.
func (r *Runtime) retryDecisions(ctx context.Context) {
	r.mu.Lock()
	todo := r.redecide
	r.redecide = nil
	r.mu.Unlock()
	for i, d := range todo {
		a, err := r.c.Append(ctx, d.rec.encode(), d.streams...)
		r.opts.Logger.Debug("tango: decision record", "commit", d.rec.Commit, "committed", d.rec.Committed, "addr", a, "err", err)
		if err != nil {
			r.mu.Lock()
			r.redecide = append(r.redecide, todo[i:]...)
			r.mu.Unlock()
			return
		}
	}
}

// flushDecisions appends the decision records owed, holding the readers.
func (r *Runtime) flushDecisions(ctx context.Context) error {
	if _, err := r.lockSync(ctx); err != nil {
		return err
	}
	defer r.unlockSync()
	r.retryDecisions(ctx)
	return r.owed()
}

// owed reports the decision records not appended yet.
func (r *Runtime) owed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.redecide); n > 0 {
		return fmt.Errorf("tango: %d decision records not appended yet", n)
	}
	return nil
}

// Flush appends the decision records this runtime owes: those of its
// commit records that its replay decided and whose appends failed, or that
// it decided after their Commit gave up (an *OutcomeUnknownError). It syncs
// first, to decide those. They are retried at every sync too; Flush is for
// a runtime that is about to stop, so that runtimes waiting on them go on.
//
// Errors: those of Sync; an error if some decision records could not be
// appended yet.
func (r *Runtime) Flush(ctx context.Context) error {
	if err := r.sync(ctx); err != nil {
		return err
	}
	return r.flushDecisions(ctx)
}
