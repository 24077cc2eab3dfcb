package corfu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Client is a CORFU client: it appends to and reads from the shared log by
// talking to the sequencer and the storage units directly, guided by its
// cached projection. It is safe for concurrent use; each call holds no lock
// while it waits.
type Client struct {
	cfg Config
	env Env
	log *slog.Logger

	hooks hookSet // Config.Hooks, by interface

	mu       sync.Mutex
	proj     *projection.Projection // the newest committed projection seen
	fetching *fetch                 // the projection refresh in flight, if any

	recovering atomic.Bool   // a reconfiguration started by the client itself is running
	seq        atomic.Uint64 // the sequence number of the last Append call
	trimKnown  atomic.Uint64 // every address below it is trimmed (see TrimMark)
	trimSeen   atomic.Uint64 // one past the newest trim record read (see learnTrim)

	async async // AppendAsync's window, queue and batches

	mut mutant.Set // broken variants for the checker's tests; always zero outside them

	closed    atomic.Bool // set by Close: no request leaves any more
	closeOnce sync.Once
	closeErr  error
}

// ErrClosed reports an operation on a closed Client (see Client.Close).
var ErrClosed = errors.New("corfu: client closed")

// Close closes the client: it sends no request from then on, and closes
// Config.Transport if that implements io.Closer (returning its error).
// With the system environment (Config.Env nil), the goroutines the client
// keeps idle for its background tasks end too. Later calls fail with
// ErrClosed; Close itself is idempotent.
//
// Close is meant for a client whose operations have all returned. An
// operation still running fails at its next request with an error
// wrapping ErrClosed, or, for a request in flight when the transport
// closes, with the transport's error (over TCP, transport.ErrUnreachable);
// an Append among them may then return an *UnknownOutcomeError, as for any
// failure after its entry was sent. Close does not wait for such
// operations to return.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if cl, ok := c.cfg.Transport.(io.Closer); ok {
			c.closeErr = cl.Close()
		}
		if se, ok := c.env.(systemEnv); ok {
			se.Close() // NB: the client's own: its idle goroutines end now
		}
	})
	return c.closeErr
}

// errHopTimeout reports one request that got no answer within RPCTimeout.
var errHopTimeout = errors.New("corfu: request timed out")

// errLostRace reports that the head of an append's chain holds another
// entry or junk: the append must take a fresh token.
var errLostRace = errors.New("corfu: address taken")

// Open returns a client for the log whose layout servers cfg names. It
// fetches the current projection before it returns.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, env: cfg.Env, log: cfg.Logger, mut: mutant.Lookup(cfg.Env)}
	var err error
	if c.hooks, err = newHookSet(cfg.Hooks); err != nil {
		return nil, err
	}
	if _, err := c.refresh(ctx, 0); err != nil {
		return nil, fmt.Errorf("corfu: open: %w", err)
	}
	return c, nil
}

// Writer returns the identity that the client's entries carry
// (Config.Writer); with Entry.Seq it names each of its appends.
func (c *Client) Writer() WriterID { return c.cfg.Writer }

// Epoch returns the epoch of the client's current projection. It never
// goes back.
func (c *Client) Epoch() storage.Epoch { return c.projection().Epoch }

// Projection returns a copy of the client's current projection.
func (c *Client) Projection() *projection.Projection { return c.projection().Clone() }

// backpointers returns K: the projection's (the sequencer's), as many as
// an entry holds (MaxBackpointers), or Config.Backpointers if the
// projection leaves it to the client.
func (c *Client) backpointers() int {
	if k := c.projection().Backpointers; k > 0 {
		return min(k, MaxBackpointers)
	}
	return c.cfg.Backpointers
}

func (c *Client) projection() *projection.Projection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proj
}

// Append writes data as a new entry at the end of the log, as a member of
// the given streams, and returns its address once every replica of its chain
// holds it.
//
// Errors: ErrNilData, ErrTooLarge, ErrInvalidStreams for bad arguments;
// ctx's error if ctx ends before any replica took the entry; an
// *UnknownOutcomeError (ErrUnknownOutcome) if some replica took it and the
// append gave up before the chain was complete; ErrRetriesExhausted if
// fresh tokens kept losing races or servers kept failing; ErrSealed (a
// *storage.SealedError, errors.As) if a server was sealed at a newer epoch
// and no newer projection could be fetched.
//
// An acknowledged entry appears at exactly one address. Any error other
// than ErrUnknownOutcome means the entry was stored nowhere. An entry whose
// append returned ErrUnknownOutcome may appear at the address the error
// names (a reader completes the chain) or nowhere; retrying such an append
// may therefore store it twice. That is the only way an entry ends up at two
// addresses. An append whose address a PrefixTrim takes after the entry
// reached the chain's head returns that address: the entry was written (a
// reader may have read it) and is trimmed.
func (c *Client) Append(ctx context.Context, data []byte, streams ...StreamID) (addr storage.Address, err error) {
	tokens := 0 // handed out to this call, for the hooks
	if len(c.hooks.append) > 0 {
		start := c.env.Now()
		defer func() {
			c.hooks.onAppend(AppendEvent{Addr: addr, Bytes: len(data), Streams: len(streams), Tokens: tokens, Took: c.env.Now().Sub(start), Err: err})
		}()
	}
	if err := c.checkAppend(data, streams); err != nil {
		return 0, err
	}
	id := entryID{writer: c.cfg.Writer, seq: c.seq.Add(1)}
	return c.appendEntry(ctx, id, data, streams, c.cfg.MaxRetries+1, nil, &tokens)
}

// checkAppend checks an append's arguments.
func (c *Client) checkAppend(data []byte, streams []StreamID) error {
	switch {
	case data == nil:
		return fmt.Errorf("corfu: append: %w", ErrNilData)
	case len(data) > c.cfg.MaxEntryBytes:
		return fmt.Errorf("corfu: append: %w: %d bytes, limit %d", ErrTooLarge, len(data), c.cfg.MaxEntryBytes)
	case len(streams) > sequencer.MaxStreams:
		return fmt.Errorf("corfu: append: %w: %d streams, limit %d", ErrInvalidStreams, len(streams), sequencer.MaxStreams)
	}
	for i, s := range streams {
		if slices.Contains(streams[:i], s) {
			return fmt.Errorf("corfu: append: %w: stream %d named twice", ErrInvalidStreams, s)
		}
	}
	return nil
}

// appendEntry appends the entry id with a fresh token per attempt, at
// most attempts of them; lost, if not nil, is why an earlier attempt (a
// batch's) gave its address up. tokens counts the tokens taken.
func (c *Client) appendEntry(ctx context.Context, id entryID, data []byte, streams []StreamID, attempts int, lost error, tokens *int) (storage.Address, error) {
	for range attempts {
		tok, epoch, err := c.token(ctx, 1, streams)
		if err != nil {
			return 0, fmt.Errorf("corfu: append: token: %w", err)
		}
		*tokens++
		err = c.writeChain(ctx, epoch, tok.Start, id, encodeEntry(id, streams, tok.Backpointers, c.backpointers(), data), false)
		if err == nil {
			return tok.Start, nil
		}
		if errors.Is(err, ErrUnknownOutcome) {
			return 0, err
		}
		if !errors.Is(err, errLostRace) {
			return 0, fmt.Errorf("corfu: append: %w", err)
		}
		lost = err
		c.log.Debug("append lost its address, taking a new token", "addr", tok.Start)
	}
	return 0, fmt.Errorf("corfu: append: %w: %w", ErrRetriesExhausted, lost)
}

// writeChain writes payload, the entry id, at addr on every replica of its
// chain, head first. tokEpoch is the epoch whose sequencer handed addr out.
//
// A token belongs to its epoch. On a seal, writeChain refreshes the
// projection and looks at the head under the new epoch (even if it wrote
// the head before: the new epoch's head may be another unit, or the same
// one back blank), which fences every write of the old one: if the head
// holds the entry, the chain is completed
// at addr (abandoning a partly written entry for a fresh token would leave
// it at two addresses); if the head holds nothing, the entry is nowhere and
// addr is given up (errLostRace) for a fresh token: the new epoch's
// sequencer may hand addr out again, and its stream tails do not know addr
// as ours.
//
// stored says that payload may be on a replica already (a batch's write
// of it, see writeBatch), so that giving up leaves the outcome unknown.
func (c *Client) writeChain(ctx context.Context, tokEpoch storage.Epoch, addr storage.Address, id entryID, payload []byte, stored bool) error {
	// stored is set once payload may be on a replica: a write that was
	// sent and not refused (or refused by a seal, see below), or our own
	// entry found there. From then on, giving up leaves the outcome unknown.
	// headSeen is the epoch in which the chain's head was last known to
	// hold our entry (we wrote it, or read it there). NB: it must be the
	// current epoch: a head of an older one may have been replaced, or may
	// have come back blank and rejoined, since.
	headSeen := tokEpoch
	err := c.withEpoch(ctx, func(p *projection.Projection) error {
		loc, err := p.Locate(addr)
		if err != nil {
			return err
		}
		if p.Epoch > headSeen && !c.mut.CarryToken {
			switch got, err := c.unitRead(ctx, p, loc.Chain[0], loc.Local); {
			case err == nil && c.ours(got, id, payload):
				headSeen = p.Epoch
			case errors.Is(err, storage.ErrTrimmed) && stored:
				return err // unknown: whether our earlier write reached the head before the trim
			case err == nil, errors.Is(err, storage.ErrJunk), errors.Is(err, storage.ErrUnwritten), errors.Is(err, storage.ErrTrimmed):
				// NB: the head is sealed at p.Epoch: no write of tokEpoch
				// can land there any more, and no replica after the head
				// holds what the head lacks.
				return errLostRace
			default:
				return err
			}
		}
		for i, node := range loc.Chain {
			err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
				if err := ctx.Err(); err != nil {
					return err // NB: checked here so that nothing is sent
				}
				err := u.Write(ctx, p.Epoch, loc.Local, payload)
				if mayHaveStored(err) {
					stored = true
				}
				return err
			})
			if errors.Is(err, storage.ErrWritten) {
				// NB: the entry there may be our own (a retry after a lost
				// reply, a duplicated request, or a reader completing our
				// chain): ask who wrote it. Until the answer says
				// otherwise, ours may be stored.
				stored = true
				var got []byte
				var rerr error
				if i > 0 && c.mut.TrustsNonHead {
					got, rerr = payload, nil // mutant: counted as ours unread
				} else {
					got, rerr = c.unitRead(ctx, p, node, loc.Local)
				}
				switch {
				case rerr == nil && c.ours(got, id, payload):
					stored, err = true, nil
				case i == 0 && (rerr == nil || errors.Is(rerr, storage.ErrJunk)):
					// Another entry or junk: ours is on no replica.
					return errLostRace
				case rerr == nil || errors.Is(rerr, storage.ErrJunk):
					return fmt.Errorf("%w: address %d: replica %s holds other data than the head", ErrDiverged, addr, node)
				default:
					err = rerr // ErrTrimmed is handled below
				}
			}
			if errors.Is(err, storage.ErrTrimmed) {
				// NB: a prefix trim raced the append and took its address.
				switch {
				case i == 0 && !stored:
					return errLostRace // the trim came first: ours is nowhere
				case i > 0:
					// Ours reached the head first, and a reader may have
					// completed and read it before the trim: it counts as
					// written, and trimmed since. The trim may not have
					// reached the replicas after this one (it may still be
					// on its way, or have failed there): they get the
					// entry, so that the chain's tail serves it until the
					// trim does reach them.
					continue
				}
				return err // unknown: whether our earlier write reached the head
			}
			if err != nil {
				return err
			}
			if i == 0 {
				headSeen = p.Epoch
			}
			if c.mut.AckBeforeLast {
				return nil // mutant: acknowledged before the chain is complete
			}
		}
		return nil
	})
	if err != nil && stored && !errors.Is(err, errLostRace) {
		return &UnknownOutcomeError{Addr: addr, Cause: err}
	}
	return err
}

// ours reports whether got, the stored form of an entry, is the entry id
// whose stored form is payload: same writer, same sequence number. Bytes
// never decide it: two appends of equal bytes are two entries. The same
// identity with other bytes is a broken invariant, reported as not ours
// (the caller then sees a conflict).
func (c *Client) ours(got []byte, id entryID, payload []byte) bool {
	if c.mut.OursByBytes {
		// mutant: the bytes decide, whoever wrote them
		g, gerr := decodeEntry(0, got)
		p, perr := decodeEntry(0, payload)
		g.Writer, g.Seq, p.Writer, p.Seq = 0, 0, 0, 0
		return gerr == nil && perr == nil && reflect.DeepEqual(g, p)
	}
	gid, ok := idOf(got)
	return ok && gid == id && bytes.Equal(got, payload)
}

// mayHaveStored reports whether a write that returned err may have stored
// its data. NB: a refusal leaves the unit as it was, but the answer may be
// to a second copy of the request (the network duplicates messages) whose
// first copy was stored, and its reply lost, before the unit was sealed.
// Only the head under the new epoch tells.
func mayHaveStored(err error) bool {
	return !refused(err) && !errors.Is(err, transport.ErrNotSent) && !errors.Is(err, ErrUnavailable) || errors.Is(err, storage.ErrSealed)
}

// refused reports whether err is a unit's definite refusal of a request,
// which leaves the unit unchanged. Transport failures and timeouts are not:
// the request may have been served.
func refused(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range []error{
		storage.ErrWritten, storage.ErrTrimmed, storage.ErrSealed, storage.ErrFutureEpoch,
		storage.ErrTooLarge, storage.ErrNilData, storage.ErrInvalidAddress, transport.ErrWrongRole,
		storage.ErrBlank,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Read returns the entry at addr. It reads the chain's tail, where a write
// is committed. If the tail has nothing but the head has data, it completes
// the chain with that data. If the address was handed out but nothing is
// written anywhere, it waits up to HoleFillWait for the writer, then fills
// the hole with junk.
//
// Errors: ErrJunk (the address holds no entry), ErrTrimmed, ErrUnwritten
// (addr is at or beyond the tail), ErrInvalidAddress, ErrNoSegment,
// ErrCorruptEntry, ErrDiverged, ctx's error, ErrRetriesExhausted, ErrSealed
// (see Append).
func (c *Client) Read(ctx context.Context, addr storage.Address) (Entry, error) {
	if len(c.hooks.read) == 0 {
		return c.read(ctx, addr)
	}
	start := c.env.Now()
	e, err := c.read(ctx, addr)
	c.hooks.onRead(ReadEvent{Addr: addr, Bytes: len(e.Data), Took: c.env.Now().Sub(start), Err: err})
	return e, err
}

// read is Read, unobserved.
func (c *Client) read(ctx context.Context, addr storage.Address) (Entry, error) {
	if addr >= storage.MaxAddress {
		return Entry{}, fmt.Errorf("corfu: read %d: %w", addr, ErrInvalidAddress)
	}
	var data []byte
	err := c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		data, err = c.readAt(ctx, p, addr, false)
		if (errors.Is(err, storage.ErrJunk) || errors.Is(err, storage.ErrUnwritten)) && !c.mut.ReadTrustsRemovedUnit {
			// NB: "nothing here" is trusted only from the current
			// projection: a unit that a reconfiguration replaced while it
			// was cut off from the seal still answers in the old epoch,
			// for an address the new one may have written elsewhere. A
			// chain head of p's open segment confirms p (or sends the
			// read to a newer one); an entry needs no such check, since
			// nothing is ever written over one.
			if cerr := c.confirmEpoch(ctx, p); cerr != nil {
				return cerr
			}
		}
		return err
	})
	if err != nil {
		return Entry{}, fmt.Errorf("corfu: read %d: %w", addr, err)
	}
	return decodeEntry(addr, data)
}

// readAt reads addr under p. sealedBelow says addr lies below the tail of a
// sealed epoch (a reconfiguration scanning its log): no writer of that epoch
// can still be on its way, so a hole there is filled at once, without asking
// the sequencer (which may not be ready) and without waiting.
func (c *Client) readAt(ctx context.Context, p *projection.Projection, addr storage.Address, sealedBelow bool) ([]byte, error) {
	loc, err := p.Locate(addr)
	if err != nil {
		return nil, err
	}
	reader := loc.Chain[len(loc.Chain)-1]
	if c.mut.ReadFromHead {
		reader = loc.Chain[0] // mutant: trusts data not yet committed
	}
	data, err := c.unitRead(ctx, p, reader, loc.Local)
	if errors.Is(err, storage.ErrCorrupt) {
		return c.readAround(ctx, p, loc, err)
	}
	if !errors.Is(err, storage.ErrUnwritten) {
		return data, err
	}
	// NB: peek at the head before waiting: a slow or abandoned write shows
	// there first, and completing it beats filling it.
	if len(loc.Chain) > 1 {
		if data, done, err := c.completeFromHead(ctx, p, loc); done {
			return data, err
		}
	}
	if sealedBelow {
		return c.fillChainAs(ctx, p, loc, true)
	}
	tail, err := c.tail(ctx, p)
	if err != nil {
		return nil, err
	}
	if addr >= tail {
		return nil, storage.ErrUnwritten
	}
	// CORFU paper, hole filling: an address handed out but never written
	// is filled with junk after a wait, so a crashed writer cannot block
	// readers forever.
	deadline := c.env.Now().Add(c.cfg.HoleFillWait)
	poll := c.cfg.HoleFillWait / 8
	for c.env.Now().Before(deadline) {
		if err := c.env.Sleep(ctx, poll); err != nil {
			return nil, err
		}
		if data, done, err := c.completeFromHead(ctx, p, loc); done {
			return data, err
		}
	}
	c.log.Debug("filling hole", "addr", addr)
	return c.fillChain(ctx, p, loc)
}

// readAround reads loc from the replicas before the chain's last one, last
// first, after the last one answered that its record there is corrupt
// (storage.ErrCorrupt, a disk fault): it stored a record, so the entry is
// committed and every replica before it holds the same (chain order). The
// first one that answers with the entry, junk or a trim decides. corrupt
// is the last replica's error, returned if every replica is corrupt.
//
// With the entry or junk found, it repairs the corrupt replicas it met
// (storage.Repairer), best effort: a repair that fails is logged, and the
// read returns what it found all the same.
func (c *Client) readAround(ctx context.Context, p *projection.Projection, loc projection.Location, corrupt error) ([]byte, error) {
	err := corrupt
	bad := []projection.NodeID{loc.Chain[len(loc.Chain)-1]}
	for i := len(loc.Chain) - 2; i >= 0; i-- {
		data, rerr := c.unitRead(ctx, p, loc.Chain[i], loc.Local)
		if rerr == nil || errors.Is(rerr, storage.ErrJunk) {
			junk := rerr != nil
			for _, node := range bad {
				_ = c.repair(ctx, p, node, loc.Local, data, junk)
			}
			return data, rerr
		}
		if errors.Is(rerr, storage.ErrTrimmed) {
			return data, rerr
		}
		if errors.Is(rerr, storage.ErrCorrupt) {
			bad = append(bad, loc.Chain[i])
		} else {
			err = rerr
		}
	}
	return nil, err
}

// readAfterHead reads loc from the replicas after the chain's head, whose
// record there is corrupt (corrupt is its error), and repairs the head
// from the first that holds the entry or junk, which it returns (junk as
// storage.ErrJunk). With no replica holding either, it returns corrupt: the
// write never got past the head, and what it was is lost.
func (c *Client) readAfterHead(ctx context.Context, p *projection.Projection, loc projection.Location, corrupt error) ([]byte, error) {
	for _, node := range loc.Chain[1:] {
		data, err := c.unitRead(ctx, p, node, loc.Local)
		if err != nil && !errors.Is(err, storage.ErrJunk) {
			continue
		}
		_ = c.repair(ctx, p, loc.Chain[0], loc.Local, data, err != nil)
		return data, err
	}
	return nil, corrupt
}

// repair replaces node's record at local under p, which failed its
// checksum, with data, or with junk if junk is set (storage.Repairer: it
// lands only on a record the unit finds corrupt). A failure is logged and
// returned: a repair is best effort, the chain's other replicas still
// serve the entry.
func (c *Client) repair(ctx context.Context, p *projection.Projection, node projection.NodeID, local storage.Address, data []byte, junk bool) error {
	err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
		return u.Repair(ctx, p.Epoch, local, data, junk)
	})
	if err != nil {
		c.log.Info("repairing a corrupt replica failed", "node", node, "local", local, "epoch", p.Epoch, "err", err)
	}
	return err
}

// completeFromHead reads the chain's head. If it holds data or junk, it
// copies that down the chain and reports done.
func (c *Client) completeFromHead(ctx context.Context, p *projection.Projection, loc projection.Location) ([]byte, bool, error) {
	data, err := c.unitRead(ctx, p, loc.Chain[0], loc.Local)
	if errors.Is(err, storage.ErrCorrupt) {
		data, err = c.readAfterHead(ctx, p, loc, err)
		if errors.Is(err, storage.ErrCorrupt) && p.Segments[loc.Segment].End != 0 {
			// NB: a closed segment: the reconfiguration that closed it
			// sealed every writer of it out, so a write only the head
			// took was never acknowledged, and is filled like a hole.
			data, err = c.fillChainAs(ctx, p, loc, true)
			return data, true, err
		}
		if errors.Is(err, storage.ErrCorrupt) {
			// NB: the open segment: the writer may still be on its way
			// down the chain. Wait for it as for a hole; the fill after
			// the wait closes the segment (orphanError).
			return nil, false, nil
		}
	}
	switch {
	case err == nil:
		data, err = c.completeChain(ctx, p, loc, data)
		return data, true, err
	case errors.Is(err, storage.ErrJunk):
		data, err = c.fillChain(ctx, p, loc)
		return data, true, err
	case errors.Is(err, storage.ErrUnwritten):
		return nil, false, nil
	default:
		return nil, true, err
	}
}

// completeChain writes data, found at the chain's head, to the replicas
// after it.
func (c *Client) completeChain(ctx context.Context, p *projection.Projection, loc projection.Location, data []byte) ([]byte, error) {
	for _, node := range loc.Chain[1:] {
		err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
			return u.Write(ctx, p.Epoch, loc.Local, data)
		})
		if errors.Is(err, storage.ErrWritten) {
			got, rerr := c.unitRead(ctx, p, node, loc.Local)
			if errors.Is(rerr, storage.ErrCorrupt) {
				// NB: the replica holds a record there that fails its
				// checksum: the head's data replaces it (best effort; the
				// rest of the chain can still serve the entry, see
				// readAround).
				_ = c.repair(ctx, p, node, loc.Local, data, false)
				continue
			}
			if rerr != nil && !errors.Is(rerr, storage.ErrJunk) {
				return nil, rerr
			}
			if rerr != nil || !bytes.Equal(got, data) {
				return nil, fmt.Errorf("%w: local address %d: replica %s differs from the head", ErrDiverged, loc.Local, node)
			}
			err = nil
		}
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

// fillChain junk-fills loc through its chain, head first. If the head holds
// data, the fill turns into completing that data, which it returns; else it
// returns ErrJunk.
func (c *Client) fillChain(ctx context.Context, p *projection.Projection, loc projection.Location) ([]byte, error) {
	return c.fillChainAs(ctx, p, loc, false)
}

// fillChainAs is fillChain; orphans says that no writer can still write
// loc (the log is sealed past every writer that got it, see fillSealed), so
// a corrupt head that no replica after it can repair held a write that
// never got past it and was never acknowledged: it is junk-filled like a
// hole. Without it, that head's error is the fill's.
func (c *Client) fillChainAs(ctx context.Context, p *projection.Projection, loc projection.Location, orphans bool) ([]byte, error) {
	if err := c.restoreHead(ctx, p, loc); err != nil {
		return nil, err
	}
	for i, node := range loc.Chain {
		err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
			return u.Fill(ctx, p.Epoch, loc.Local)
		})
		if errors.Is(err, storage.ErrWritten) {
			data, rerr := c.unitRead(ctx, p, node, loc.Local)
			if i == 0 && errors.Is(rerr, storage.ErrCorrupt) {
				// NB: the head holds a record that fails its checksum: a
				// replica after it that holds the entry (or junk) says
				// what it was, and repairs it.
				data, rerr = c.readAfterHead(ctx, p, loc, rerr)
				if errors.Is(rerr, storage.ErrCorrupt) && len(loc.Chain) == 1 {
					// NB: the head is the chain's last replica: what it
					// stored was committed, maybe acknowledged, and only
					// it can say what. A read that failed its checksum
					// may fail once (a flipped bit on the way) or for
					// good; either way it is no hole to fill.
					return nil, rerr
				}
				if errors.Is(rerr, storage.ErrCorrupt) && !orphans && p.Segments[loc.Segment].End == 0 {
					// NB: the writer may still be on its way down the
					// chain: no junk may go there before a seal fences it.
					return nil, &orphanError{start: p.Segments[loc.Segment].Start, err: rerr}
				}
				if errors.Is(rerr, storage.ErrCorrupt) && (orphans || p.Segments[loc.Segment].End != 0) {
					// NB: the repair lands only on a record the head
					// finds corrupt (not on one a read only saw damaged),
					// and before any junk goes down the chain.
					if rerr = c.repair(ctx, p, node, loc.Local, nil, true); rerr == nil {
						rerr = storage.ErrJunk
					}
				}
				if errors.Is(rerr, storage.ErrJunk) {
					continue // NB: junk: the fill goes on down the chain
				}
			}
			if i > 0 && errors.Is(rerr, storage.ErrCorrupt) {
				// NB: the head holds junk, so this replica's damaged
				// record can only have been junk too.
				if perr := c.repair(ctx, p, node, loc.Local, nil, true); perr != nil {
					return nil, perr
				}
				continue
			}
			if rerr != nil {
				return nil, rerr
			}
			if i == 0 && c.mut.FillOverwrites {
				continue // mutant: junk over the rest of a written chain
			}
			if i == 0 && c.mut.FillSkipsCopy {
				return data, nil // mutant: the rest of the chain stays short
			}
			if i == 0 {
				// CORFU: a fill never clobbers: the writer got there first.
				return c.completeChain(ctx, p, loc, data)
			}
			return nil, fmt.Errorf("%w: local address %d: head is junk, replica %s has data", ErrDiverged, loc.Local, node)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, storage.ErrJunk
}

// restoreHead looks at the replica after loc's head before a fill puts
// junk at the head, and if it holds data, writes that data at the head
// first. A head holds every entry a replica after it holds, unless its
// disk lost the record in a way its recovery could not see (a misdirected
// write that destroyed it: the unit answers unwritten, as for a hole).
// Junk there would then sit ahead of the entry, which readers of the
// chain's tail may have read. Where the head holds the entry, the write
// is refused (storage.ErrWritten) and the fill finds it there. Errors of
// the read other than the replica's own answers (an unreachable replica,
// a seal) are returned: the fill could not get past that replica either.
func (c *Client) restoreHead(ctx context.Context, p *projection.Projection, loc projection.Location) error {
	if len(loc.Chain) < 2 {
		return nil
	}
	data, err := c.unitRead(ctx, p, loc.Chain[1], loc.Local)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrJunk), errors.Is(err, storage.ErrUnwritten), errors.Is(err, storage.ErrCorrupt), errors.Is(err, storage.ErrTrimmed):
		return nil // NB: nothing that junk at the head would contradict
	default:
		return err
	}
	err = c.unitDo(ctx, p, loc.Chain[0], func(u transport.UnitClient) error {
		return u.Write(ctx, p.Epoch, loc.Local, data)
	})
	switch {
	case err == nil:
		c.log.Info("restored a head's lost record from the replica after it", "node", loc.Chain[0], "local", loc.Local, "epoch", p.Epoch)
		return nil
	case errors.Is(err, storage.ErrWritten), errors.Is(err, storage.ErrTrimmed):
		return nil // NB: the head holds something: the fill reads what
	}
	return err
}

// Fill junk-fills the hole at addr, so readers stop waiting for it. It
// returns nil if the address now holds junk, and ErrWritten if it holds an
// entry (whose chain Fill has completed).
//
// Errors: ErrWritten, ErrBeyondTail (addr was never handed out),
// ErrTrimmed, ErrInvalidAddress, ErrDiverged, ctx's error,
// ErrRetriesExhausted, ErrSealed (see Append).
func (c *Client) Fill(ctx context.Context, addr storage.Address) error {
	return c.atHandedOut(ctx, "fill", addr, func(p *projection.Projection, loc projection.Location) error {
		_, err := c.fillChain(ctx, p, loc)
		switch {
		case err == nil:
			return storage.ErrWritten
		case errors.Is(err, storage.ErrJunk):
			return nil
		}
		return err
	})
}

// Trim tells every replica of addr that its entry may be reclaimed. Reads of
// addr then return ErrTrimmed. Trimming a trimmed address succeeds.
//
// Errors: ErrBeyondTail, ErrInvalidAddress, ctx's error, ErrRetriesExhausted,
// ErrSealed (see Append).
func (c *Client) Trim(ctx context.Context, addr storage.Address) error {
	return c.atHandedOut(ctx, "trim", addr, func(p *projection.Projection, loc projection.Location) error {
		for _, node := range loc.Chain {
			err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
				return u.Trim(ctx, p.Epoch, loc.Local)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// atHandedOut runs f on the chain of addr, an address the sequencer has
// handed out, under the current projection (again after a refresh, if a
// server was sealed). verb names the operation in errors.
func (c *Client) atHandedOut(ctx context.Context, verb string, addr storage.Address, f func(p *projection.Projection, loc projection.Location) error) error {
	if addr >= storage.MaxAddress {
		return fmt.Errorf("corfu: %s %d: %w", verb, addr, ErrInvalidAddress)
	}
	err := c.withEpoch(ctx, func(p *projection.Projection) error {
		if err := c.checkBelowTail(ctx, p, addr, false); err != nil {
			return err
		}
		loc, err := p.Locate(addr)
		if err != nil {
			return err
		}
		return f(p, loc)
	})
	if err != nil {
		return fmt.Errorf("corfu: %s %d: %w", verb, addr, err)
	}
	return nil
}

// PrefixTrim trims every address below addr on every unit. addr may equal
// the tail (trim everything), not exceed it: the tail is checked before any
// unit is trimmed.
//
// Errors: ErrBeyondTail (no unit was trimmed), ErrInvalidAddress, ctx's
// error, ErrRetriesExhausted, ErrSealed (see Append).
func (c *Client) PrefixTrim(ctx context.Context, addr storage.Address) error {
	if addr >= storage.MaxAddress {
		return fmt.Errorf("corfu: prefix trim %d: %w", addr, ErrInvalidAddress)
	}
	sent := false // some unit may hold this trim's mark
	err := c.withEpoch(ctx, func(p *projection.Projection) error {
		// NB: not again once a unit may be trimmed. A retry in a newer
		// epoch may find the tail below addr after a tail reset: the
		// units the trim had not reached bounded it, while others hold
		// its mark already. The trim carries on: the reset's reissued
		// addresses below addr held nothing, and a writer handed one
		// finds it trimmed and takes a fresh token.
		if !sent {
			if err := c.checkBelowTail(ctx, p, addr, true); err != nil {
				return err
			}
		}
		// Each unit keeps one trim mark over its local address space: the
		// highest local floor of addr over the segments that start below it.
		marks := map[projection.NodeID]storage.Address{}
		for _, seg := range p.Segments {
			if seg.Start >= addr {
				continue
			}
			for i, chain := range seg.Stripes {
				floor := seg.LocalFloor(i, addr)
				for _, node := range chain {
					marks[node] = max(marks[node], floor)
				}
			}
		}
		nodes := make([]projection.NodeID, 0, len(marks))
		for n := range marks {
			nodes = append(nodes, n)
		}
		slices.Sort(nodes)
		for _, node := range nodes {
			err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
				err := u.PrefixTrim(ctx, p.Epoch, marks[node])
				sent = sent || !refused(err)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("corfu: prefix trim %d: %w", addr, err)
	}
	c.noteTrim(addr)
	return nil
}

// checkBelowTail returns ErrBeyondTail if addr is at or above the tail (above
// it, when orEqual).
func (c *Client) checkBelowTail(ctx context.Context, p *projection.Projection, addr storage.Address, orEqual bool) error {
	tail, err := c.tail(ctx, p)
	if err != nil {
		return err
	}
	if addr > tail || addr == tail && !orEqual {
		return fmt.Errorf("%w: address %d, tail %d", ErrBeyondTail, addr, tail)
	}
	return nil
}

// Tail returns the next address the sequencer will hand out: every address
// below it has been handed out, and may hold an entry, junk or a hole.
//
// Errors: ctx's error, ErrRetriesExhausted, ErrSealed (see Append).
func (c *Client) Tail(ctx context.Context) (storage.Address, error) {
	var tail storage.Address
	err := c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		if tail, err = c.tail(ctx, p); err != nil {
			return err
		}
		return c.confirmEpoch(ctx, p)
	})
	if err != nil {
		return 0, fmt.Errorf("corfu: tail: %w", err)
	}
	return tail, nil
}

func (c *Client) tail(ctx context.Context, p *projection.Projection) (storage.Address, error) {
	tok, err := c.next(ctx, p, 0, nil)
	return tok.Start, err
}

// confirmEpoch checks that p is still the current projection, after its
// sequencer answered a query (a tail, a stream's tail) that nothing else
// fences: a sequencer that a reconfiguration could not seal (it was cut
// off, and the reconfiguration moved or replaced it) keeps answering in
// its old epoch, with a tail that may lie below appends acknowledged
// since. Such a reconfiguration had to seal every chain head of p's open
// segment (see seal; a blank head's place is taken by the first replica
// after it that is not blank), so a head that answers at p's epoch confirms
// it, and one sealed past it answers with a *storage.SealedError, which
// sends the caller to a newer projection. An unreachable head is skipped
// for the next chain's; if none answers, the round is retried with backoff.
func (c *Client) confirmEpoch(ctx context.Context, p *projection.Projection) error {
	return c.retry(ctx, func() error { return c.confirmOnce(ctx, p) })
}

// confirmOnce is one round of confirmEpoch. In each chain it asks the
// first replica that is not blank (the one a seal must reach).
func (c *Client) confirmOnce(ctx context.Context, p *projection.Projection) error {
	var err error
	for _, chain := range p.Segments[len(p.Segments)-1].Stripes {
		for _, node := range chain {
			u := transport.UnitClient{Caller: hopCaller{c: c}, Node: node}
			// NB: a seal at the epoch a unit has is a no-op that answers
			// with its epoch; a unit behind it is moved up to it, which
			// holding a committed p entitles the client to (see unitDo).
			_, err = u.Seal(ctx, p.Epoch)
			if err == nil || errors.As(err, new(*storage.SealedError)) || ctx.Err() != nil {
				return err
			}
			if !errors.Is(err, storage.ErrBlank) {
				break // unreachable: try the next chain
			}
		}
	}
	if errors.Is(err, storage.ErrBlank) {
		err = fmt.Errorf("%w: %w", errRetry, err) // a reconfiguration will take it out
	}
	return err
}

// token asks the sequencer for n addresses in the current epoch, and
// returns them with the epoch that handed them out.
func (c *Client) token(ctx context.Context, n int, streams []StreamID) (tok sequencer.Token, epoch storage.Epoch, err error) {
	err = c.withEpoch(ctx, func(p *projection.Projection) error {
		epoch = p.Epoch
		tok, err = c.next(ctx, p, n, streams)
		return err
	})
	return tok, epoch, err
}

func (c *Client) next(ctx context.Context, p *projection.Projection, n int, streams []StreamID) (tok sequencer.Token, err error) {
	seq := transport.SequencerClient{Caller: hopCaller{c: c}, Node: p.Sequencer}
	var notReadySince time.Time
	recovered := false
	patience := c.patience()
	unanswered := false // an attempt got no answer
	err = c.retry(ctx, func() error {
		if unanswered {
			// NB: a sequencer that does not answer may have been moved
			// (see unitDo).
			if err := c.movedOn(ctx, p); err != nil {
				return err
			}
		}
		if cur := c.projection(); cur.Epoch > p.Epoch {
			// NB: another call of this client (a concurrent append, or a
			// batch of AppendAsync) installed a newer projection since p
			// was taken: a token of p's epoch is refused, or belongs to
			// an epoch the client has left. Its epochs never go back.
			return &storage.SealedError{Epoch: cur.Epoch}
		}
		tok, err = seq.Next(ctx, p.Epoch, n, streams)
		if transient(err) {
			unanswered = true
			if m := c.movedOn(ctx, p); m != nil {
				return m
			}
			return err
		}
		if !errors.Is(err, sequencer.ErrNotReady) {
			return err
		}
		// NB: a reconfiguration is bootstrapping the sequencer; wait for
		// it. A sequencer that stays not ready for longer has lost its
		// state (a restart): recover it with a reconfiguration, which seals
		// the log, finds its tail and bootstraps the sequencer there.
		now := c.env.Now()
		if notReadySince.IsZero() {
			notReadySince = now
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		if now.Sub(notReadySince) < patience {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		// NB: past its patience, the wait looks for a newer epoch at every
		// attempt, not once: a sequencer that restarted after a newer epoch
		// sealed it knows no epoch and answers "not ready" for the old one
		// for good, and the epoch may move on after this client's own
		// recovery lost or failed.
		if latest, lerr := c.latest(ctx); lerr == nil && latest.Epoch > p.Epoch {
			return &storage.SealedError{Epoch: latest.Epoch} // retry in their epoch
		}
		if !recovered && c.recovering.CompareAndSwap(false, true) {
			recovered = true
			c.log.Info("sequencer not ready, recovering it", "epoch", p.Epoch)
			_, rerr := c.Reconfigure(ctx, nil)
			c.recovering.Store(false)
			if rerr != nil {
				c.log.Debug("sequencer recovery failed", "err", rerr)
			}
			if e := c.projection().Epoch; e > p.Epoch {
				return &storage.SealedError{Epoch: e}
			}
		}
		return fmt.Errorf("%w: %w", errRetry, err)
	})
	return tok, err
}

// Range yields the entries at addresses [from, to) in order, skipping junk.
// It reads ahead, RangeBatch addresses at a time, with one request per
// unit (OpReadBatch): an entry found at its chain's tail is yielded as
// read there; anything else (junk, a hole, a trim, an error) is read
// again on its own, as Read does.
// It steps over trimmed addresses: each run of them is yielded as one
// *TrimmedError (errors.Is ErrTrimmed), with the run's first address in the
// Entry, and the walk goes on after it if the consumer does; a run that
// reaches the log's trim mark (TrimMark) ends there without reading the
// addresses in between. It stops after yielding any other error
// (ErrUnwritten past the tail, ctx's error...), with the failing address in
// the Entry.
func (c *Client) Range(ctx context.Context, from, to storage.Address) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		trims := &rangeTrims{c: c}
		ahead := &readAhead{c: c}
		for a := from; a < to; {
			if err := ctx.Err(); err != nil {
				if trims.flush(yield) {
					yield(Entry{Address: a}, err)
				}
				return
			}
			if k := c.knownTrim(); a < k {
				a = trims.step(ctx, a, to) // NB: known trimmed: not read
				continue
			}
			e, err := ahead.read(ctx, a, to)
			switch {
			case errors.Is(err, ErrJunk):
				a++
				continue
			case errors.Is(err, ErrTrimmed):
				a = trims.step(ctx, a, to)
				continue
			}
			if !trims.flush(yield) {
				return
			}
			if err != nil {
				yield(Entry{Address: a}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
			a++
		}
		trims.flush(yield)
	}
}

// Follow yields every entry from address from on, in order, skipping junk,
// and waits for new ones when it reaches the tail. It reads every address
// it passes, so a tail reset (projection.Reset) cannot make it skip one:
// whatever it read before the reset lies below the reset's tail. Trimmed
// addresses are stepped over and reported as Range does (a
// *TrimmedError), and the walk goes on after them. It ends when ctx does
// (yielding ctx's error) or after yielding any other error.
//
// Once it has caught up, Follow does not poll: it waits at the tail
// replica of the next address's chain, which answers the moment the entry
// is written there (see transport.ReadWaits), for up to Config.FollowWait,
// then asks for the tail again. Where a unit cannot park a read, it asks
// for the tail every Config.FollowPoll.
func (c *Client) Follow(ctx context.Context, from storage.Address) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		next := from
		w := follower{c: c, parks: true}
		for {
			tail, err := c.Tail(ctx)
			if err != nil {
				yield(Entry{Address: next}, err)
				return
			}
			for e, err := range c.Range(ctx, next, tail) {
				var trimmed *TrimmedError
				if !yield(e, err) || err != nil && !errors.As(err, &trimmed) {
					return
				}
			}
			next = max(next, tail)
			for {
				e, ok, err := w.await(ctx, next)
				if err != nil {
					yield(Entry{Address: next}, err)
					return
				}
				if !ok {
					break
				}
				if !yield(e, nil) {
					return
				}
				next++
			}
		}
	}
}

// follower is Follow's wait for the next entry.
type follower struct {
	c     *Client
	parks bool // the units park reads; false once one could not
}

// await waits for the entry at a: it returns it (ok) if the tail replica
// of a's chain answered the wait with one. Otherwise (the wait is up, a
// holds junk, a trim, an error, or the unit cannot park reads: then after
// FollowPoll) Follow asks for the tail again and reads on with Range,
// which deals with each; err is only ctx's.
//
// An entry at a chain's tail replica is committed, and nothing is ever
// written over it, so it needs no other check (as with Range's read-ahead).
func (f *follower) await(ctx context.Context, a storage.Address) (e Entry, ok bool, err error) {
	c := f.c
	poll := func() (Entry, bool, error) { return Entry{}, false, c.env.Sleep(ctx, c.cfg.FollowPoll) }
	if !f.parks {
		return poll()
	}
	p := c.projection()
	loc, err := p.Locate(a)
	if err != nil {
		return poll()
	}
	node := loc.Chain[len(loc.Chain)-1]
	if c.mut.ReadFromHead {
		node = loc.Chain[0] // mutant: trusts data not yet committed
	}
	u := transport.UnitClient{Caller: hopCaller{c: c, wait: c.cfg.FollowWait}, Node: node}
	data, err := u.ReadWait(ctx, p.Epoch, loc.Local, c.cfg.FollowWait)
	switch {
	case ctx.Err() != nil:
		return Entry{}, false, ctx.Err()
	case err == nil:
		e, err := decodeEntry(a, data)
		if len(c.hooks.read) != 0 {
			c.hooks.onRead(ReadEvent{Addr: a, Bytes: len(e.Data), Err: err})
		}
		return e, err == nil, nil
	case errors.Is(err, storage.ErrUnwritten):
		return Entry{}, false, nil // the wait is up
	case errors.Is(err, transport.ErrWrongRole), errors.Is(err, transport.ErrMalformed):
		f.parks = false // NB: a host that cannot park reads, or does not know the op
		return poll()
	}
	// NB: junk, a trim, a seal, an unreachable unit: the tail and Range
	// take it from here, after a pause, since the same answer may come
	// back at once.
	return poll()
}

// unitRead reads one replica.
func (c *Client) unitRead(ctx context.Context, p *projection.Projection, node projection.NodeID, local storage.Address) (data []byte, err error) {
	err = c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
		data, err = u.Read(ctx, p.Epoch, local)
		return err
	})
	return data, err
}

// unitDo runs f against one unit, retrying requests that got no answer. A
// unit behind the client's epoch is sealed at it first: the client holds a
// committed projection of that epoch, which is what entitles it to.
//
// A unit that lost its data (storage.ErrBlank) gives a *blankError naming
// it, which withEpoch recovers from.
func (c *Client) unitDo(ctx context.Context, p *projection.Projection, node projection.NodeID, f func(u transport.UnitClient) error) error {
	u := transport.UnitClient{Caller: hopCaller{c: c}, Node: node}
	failed := 0 // attempts in a row that got no answer
	err := c.retry(ctx, func() error {
		if failed > 0 {
			// NB: a unit that does not answer may have been replaced: a
			// newer projection sends the caller there (withEpoch),
			// instead of retrying a dead unit until the retries run out.
			// It looks right after an attempt got no answer, and again
			// after the backoff, just before the next one: a heal commits
			// while clients sleep as often as while they wait.
			if err := c.movedOn(ctx, p); err != nil {
				return err
			}
		}
		err := f(u)
		if errors.Is(err, storage.ErrFutureEpoch) {
			c.log.Debug("sealing a unit behind the projection", "node", node, "epoch", p.Epoch)
			if _, serr := u.Seal(ctx, p.Epoch); serr != nil {
				return serr
			}
			err = f(u)
		}
		if !transient(err) {
			return err
		}
		if m := c.movedOn(ctx, p); m != nil {
			return m
		}
		if failed++; failed >= 2 && errors.Is(err, transport.ErrNotSent) {
			return fmt.Errorf("%w: unit %s: %w", ErrUnavailable, node, err)
		}
		return err
	})
	if err == nil {
		return nil // NB: before the errors.As target, which escapes
	}
	var blank *blankError
	if errors.Is(err, storage.ErrBlank) && !errors.As(err, &blank) {
		return &blankError{node: node, err: err}
	}
	return err
}

// movedOn returns a *storage.SealedError naming the newest epoch if the
// layout servers hold a projection newer than p, else nil.
func (c *Client) movedOn(ctx context.Context, p *projection.Projection) error {
	if latest, err := c.latest(ctx); err == nil && latest.Epoch > p.Epoch {
		return &storage.SealedError{Epoch: latest.Epoch}
	}
	return nil
}

// blankError reports that unit node answered storage.ErrBlank: it came
// back with an empty disk (fault catalog P4). It unwraps to the unit's
// error.
type blankError struct {
	node projection.NodeID
	err  error
}

func (e *blankError) Error() string { return fmt.Sprintf("corfu: unit %s: %v", e.node, e.err) }
func (e *blankError) Unwrap() error { return e.err }

// orphanError reports a record at the head of a chain of the open segment
// (the one starting at start) that fails its checksum, where no replica
// after the head holds anything: a write that got no further than the head,
// whose writer may still be on its way down the chain, or dead. Only a seal
// tells: withEpoch closes the segment (closeOrphan), after which the write
// is filled like any other that never got past the head of a closed
// segment. It unwraps to the head's error.
type orphanError struct {
	start storage.Address
	err   error
}

func (e *orphanError) Error() string {
	return fmt.Sprintf("corfu: a corrupt record at a chain head of the open segment at %d: %v", e.start, e.err)
}
func (e *orphanError) Unwrap() error { return e.err }

// errRetry marks an error as worth retrying after a backoff.
var errRetry = errors.New("corfu: retry")

func transient(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return false // NB: given up on already (see unitDo)
	}
	return errors.Is(err, errHopTimeout) || errors.Is(err, errRetry) ||
		errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrMalformed)
}

// retry runs f until it succeeds or fails for good, backing off between
// attempts that got no answer; at most MaxRetries+1 attempts.
func (c *Client) retry(ctx context.Context, f func() error) error {
	return c.retryN(ctx, c.cfg.MaxRetries+1, f)
}

// retryN is retry with at most n attempts.
func (c *Client) retryN(ctx context.Context, n int, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt+1 >= n {
			return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
		}
		d := c.backoff(attempt)
		c.hooks.onRetry(RetryEvent{Attempt: attempt + 1, Delay: d, Err: err})
		if err := c.env.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// backoff returns the delay before retry attempt+1: exponential, capped,
// with jitter over its upper half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff << min(attempt, 20)
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(c.env.Rand().Int64N(int64(half)+1))
}

// patience returns how long a client waits on a reconfiguration it
// expects someone to be finishing (a sequencer not ready, a blank unit not
// joined yet) before it starts one itself. It is jittered so that, of
// several clients waiting on one, one usually does it and the rest find it
// done. It stays well inside the retry budget (MaxRetries backoffs), so
// that some waiting client does act.
func (c *Client) patience() time.Duration {
	return c.cfg.HoleFillWait/4 + time.Duration(c.env.Rand().Int64N(int64(c.cfg.HoleFillWait/4)+1))
}

// withEpoch runs f with the current projection. When a server answers that
// it is sealed at a newer epoch, it fetches a newer projection (once for
// that epoch) and runs f again, at most MaxRetries times. When a unit
// answers that it came back blank, it takes the unit out and back in with a
// reconfiguration (see rejoin) and runs f again under the new epoch.
func (c *Client) withEpoch(ctx context.Context, f func(p *projection.Projection) error) error {
	var blankSince blankSighting
	for attempt := 0; ; attempt++ {
		p := c.projection()
		err := f(p)
		if err == nil {
			return nil // NB: before the errors.As targets, which escape
		}
		var blank *blankError
		if errors.As(err, &blank) {
			if attempt >= c.cfg.MaxRetries {
				return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
			}
			if !c.rejoin(ctx, p, blank.node, attempt, &blankSince) {
				return err
			}
			if blankSince.waited {
				// NB: a wait inside the patience is no attempt: without a
				// failure detector, a slow rejoin would otherwise use up
				// the retries before this call acts on it. The patience
				// bounds the waits, in each epoch.
				attempt--
			}
			continue
		}
		var orphan *orphanError
		if errors.As(err, &orphan) {
			if attempt >= c.cfg.MaxRetries {
				return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
			}
			if !c.closeOrphan(ctx, p, orphan.start, attempt) {
				return err
			}
			continue
		}
		var sealed *storage.SealedError
		if !errors.As(err, &sealed) {
			return err
		}
		if attempt >= c.cfg.MaxRetries {
			return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
		}
		if _, rerr := c.refresh(ctx, max(sealed.Epoch, p.Epoch+1)); rerr != nil {
			return fmt.Errorf("%w; fetching a newer projection: %w", err, rerr)
		}
	}
}

// blankSighting is when one operation first met a blank unit in an epoch
// (see rejoin).
type blankSighting struct {
	epoch    storage.Epoch
	at       time.Time
	patience time.Duration
	waits    int  // the waits inside the patience so far, for their backoff
	waited   bool // the last rejoin only waited
}

// rejoin recovers from unit node having come back blank under p: unless
// someone reconfigured past p meanwhile, it runs a reconfiguration, which
// takes every blank unit out of the chains whose data it held and lets it
// join the new open segment (see Reconfigure). It reports whether the
// caller should try again: false when node is the only replica of some
// chain, whose data is then lost for good and no reconfiguration brings
// back.
//
// It reconfigures only once the unit has stayed blank in p's epoch for a
// while (since, the operation's first sighting there): the reconfiguration
// that committed p lets the unit join as its last step, and an operation
// that met the unit just before would otherwise seal the next epoch, which
// refuses that join. With every client meeting the unit doing so, each
// reconfiguration's join (and the sequencer's bootstrap) was overtaken by
// the next one, epoch after epoch.
func (c *Client) rejoin(ctx context.Context, p *projection.Projection, node projection.NodeID, attempt int, since *blankSighting) bool {
	since.waited = false
	if !rejoinable(p, node) {
		c.log.Warn("unit lost its data and is the only replica of a chain", "node", node, "epoch", p.Epoch)
		return false
	}
	if c.movedOn(ctx, p) != nil {
		return true // someone reconfigured meanwhile: retry in their epoch
	}
	now := c.env.Now()
	if since.at.IsZero() || since.epoch != p.Epoch {
		*since = blankSighting{epoch: p.Epoch, at: now, patience: c.patience(), waits: since.waits}
	}
	if now.Sub(since.at) < since.patience {
		since.waited = true
		since.waits++
		return c.env.Sleep(ctx, c.backoff(since.waits-1)) == nil
	}
	return c.recoverBy(ctx, nil, attempt, "unit came back blank, reconfiguring", "node", node, "epoch", p.Epoch)
}

// recoverBy runs a reconfiguration with change, unless one this client
// started is running, and reports whether the caller should try again:
// true once it succeeded; else, after a backoff for attempt, true unless
// ctx ended. why and args say why, in the log.
func (c *Client) recoverBy(ctx context.Context, change Change, attempt int, why string, args ...any) bool {
	if c.recovering.CompareAndSwap(false, true) {
		c.log.Info(why, args...)
		_, err := c.Reconfigure(ctx, change)
		c.recovering.Store(false)
		if err == nil {
			return true
		}
		c.log.Debug("recovery failed: "+why, append(args, "err", err)...)
	}
	// NB: another recovery is running, or this one failed: back off.
	return c.env.Sleep(ctx, c.backoff(attempt)) == nil
}

// closeOrphan closes the open segment of p that starts at start (see
// orphanError) with a reconfiguration, unless someone reconfigured past p
// meanwhile. It reports whether the caller should try again.
func (c *Client) closeOrphan(ctx context.Context, p *projection.Projection, start storage.Address, attempt int) bool {
	if c.movedOn(ctx, p) != nil {
		return true // someone reconfigured meanwhile: retry in their epoch
	}
	return c.recoverBy(ctx, closeSegment(start), attempt,
		"a write got no further than a corrupt chain head, closing its segment", "start", start, "epoch", p.Epoch)
}

// closeSegment returns a Change that closes the open segment at the tail
// and opens a new one there with the same chains, if the open segment is
// still the one that starts at start.
func closeSegment(start storage.Address) Change {
	return func(cur *projection.Projection, tail storage.Address) (*projection.Projection, error) {
		next := cur.Clone()
		open := next.Segments[len(next.Segments)-1]
		if open.Start == start && tail > open.Start {
			stripes := make([]projection.Chain, len(open.Stripes))
			for i, chain := range open.Stripes {
				stripes[i] = slices.Clone(chain)
			}
			reopen(next, tail, stripes)
		}
		return next, nil
	}
}

// rejoinable reports whether a blank node can join p's log again: it is not
// the only replica of any chain, so a reconfiguration can take it out of
// every chain whose data it held.
func rejoinable(p *projection.Projection, node projection.NodeID) bool {
	for _, seg := range p.Segments {
		for _, chain := range seg.Stripes {
			if len(chain) == 1 && chain[0] == node {
				return false
			}
		}
	}
	return true
}

// refresh fetches the projection from the layout servers until it has one
// of epoch at least min, and installs it if it is newer than the cached one.
//
// Refreshes are single-flight: while one call fetches, the others wait for
// it (on an Env Signal, so the simulator runs them too) and then look at
// what it installed, instead of all asking the layout servers at once.
func (c *Client) refresh(ctx context.Context, min storage.Epoch) (*projection.Projection, error) {
	for {
		if p := c.projection(); p != nil && p.Epoch >= min {
			return p, nil // another call got there first
		}
		c.mu.Lock()
		if f := c.fetching; f != nil {
			sig := c.env.NewSignal("projection refresh")
			f.waiters = append(f.waiters, sig)
			c.mu.Unlock()
			if err := sig.Wait(ctx); err != nil {
				return nil, err
			}
			// NB: the call waited for failed for a projection this one
			// wants too: its error is this one's (but for its own ctx's).
			if p := c.projection(); f.err != nil && f.min >= min && ctx.Err() == nil && !isCtxErr(f.err) && (p == nil || p.Epoch < min) {
				return nil, f.err
			}
			continue
		}
		f := &fetch{min: min}
		c.fetching = f
		c.mu.Unlock()
		p, err := c.fetchObserved(ctx, min)
		c.mu.Lock()
		c.fetching, f.err = nil, err
		waiters := f.waiters
		c.mu.Unlock()
		for _, w := range waiters {
			w.Fire()
		}
		return p, err
	}
}

// fetch is a projection refresh in flight (see refresh).
type fetch struct {
	min     storage.Epoch
	err     error
	waiters []Signal
}

// isCtxErr reports whether err is a context's.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fetchProjection is refresh's fetch: it asks the layout servers until one
// has a projection of epoch at least min, and installs it.
func (c *Client) fetchProjection(ctx context.Context, min storage.Epoch) (*projection.Projection, error) {
	var (
		lastErr error
		since   time.Time // when the first round failed
		tried   bool      // whether this call ran a recovery
	)
	for attempt := 0; attempt <= c.cfg.MaxRetries; attempt++ {
		servers := c.cfg.Layout
		if p := c.projection(); p != nil {
			servers = p.Layout
		}
		for i := range servers {
			node := servers[(attempt+i)%len(servers)]
			lc := transport.LayoutClient{Caller: hopCaller{c: c}, Node: node}
			p, err := lc.Get(ctx)
			if err != nil {
				lastErr = err
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue
			}
			if p.Epoch < min {
				lastErr = fmt.Errorf("corfu: layout server %s has epoch %d, want %d", node, p.Epoch, min)
				continue
			}
			return c.install(p), nil
		}
		if since.IsZero() {
			since = c.env.Now()
		} else if !tried && (c.env.Now().Sub(since) >= 2*c.cfg.HoleFillWait || attempt >= c.cfg.MaxRetries-1) &&
			c.projection() != nil && c.recovering.CompareAndSwap(false, true) {
			// NB: patient (a reconfiguration may still be on its way), but
			// never so patient that the retries run out first.
			tried = true
			// NB: a server is sealed at an epoch no layout server has
			// committed: a reconfiguration died between sealing and
			// agreeing. Finish it, with the layout unchanged.
			c.log.Info("projection missing for a sealed epoch, reconfiguring", "epoch", min)
			p, err := c.Reconfigure(ctx, nil)
			c.recovering.Store(false)
			if err == nil && p.Epoch >= min {
				return p, nil
			}
		}
		if err := c.env.Sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: fetching projection: %w", ErrRetriesExhausted, lastErr)
}

// install caches p if it is newer than the cached projection and returns
// the cached one.
func (c *Client) install(p *projection.Projection) *projection.Projection {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proj == nil || p.Epoch > c.proj.Epoch || c.mut.EpochGoesBack && p.Epoch != c.proj.Epoch {
		c.log.Debug("installing projection", "epoch", p.Epoch)
		c.proj = p
	}
	return c.proj
}

// hopCaller bounds every request by RPCTimeout (plus wait, for a request
// the server parks: transport.UnitClient.ReadWait) and reports a request
// that ran out of it as errHopTimeout, distinct from the caller's own ctx.
type hopCaller struct {
	c    *Client
	wait time.Duration
}

func (h hopCaller) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	if h.c.closed.Load() {
		return nil, fmt.Errorf("%w: %s to %s", ErrClosed, req.Op, to)
	}
	hctx, cancel := h.c.env.WithTimeout(ctx, h.c.cfg.RPCTimeout+h.wait)
	defer cancel()
	resp, err := h.c.cfg.Transport.Call(hctx, to, req)
	// NB: only the hop's own deadline is a timeout; a server's answer that
	// arrives as the deadline passes stays an answer.
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && hctx.Err() != nil {
		return nil, fmt.Errorf("%w: %s op %d", errHopTimeout, to, req.Op)
	}
	return resp, err
}
