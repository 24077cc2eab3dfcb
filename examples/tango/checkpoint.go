package tango

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Checkpoints. A checkpoint of an object is its state and versions as of
// a position S of the log (every update below S applied, none above), with
// the epoch S was taken in: one record on the object's CheckpointStream,
// which holds the bytes inline or names the chunk entries (on no stream)
// that hold them. The record is appended after every chunk was
// acknowledged, so a checkpoint whose record can be read is complete.
//
// A replica built from a checkpoint applies the object's entries from S on
// and skips those below. A tail reset after S's epoch whose tail lies below
// S (see projection.Reset) hands the addresses from that tail on out again:
// what lands there is not in the checkpoint, so the replica starts at the
// reset's tail instead (Projection.Rewind). Trim trims below the lowest such
// start of the hosted objects' latest checkpoints, never above: an update
// at or above a checkpoint's S is never trimmed by it, whatever checkpoint
// is being written or read at the time.

// ErrNoCheckpoint reports a Trim with a hosted object that has no
// checkpoint in the log.
var ErrNoCheckpoint = errors.New("tango: no checkpoint")

// checkpoint is a checkpoint found in the log, ready to load.
type checkpoint struct {
	rec  *checkpointRecord
	addr storage.Address // its record's
	from storage.Address // where a replica loaded from it starts: S, or a reset's tail below S
	blob []byte          // read on demand
}

// Checkpoint writes a checkpoint of each hosted object named (of every
// hosted object if none is) into the log, all as of one position, and
// returns that position. The log may then be trimmed below it (Trim).
//
// Errors: those of Sync (but for an *UndecidedError: the checkpoint is
// then taken as of the undecided commit record); ErrNotHosted; an encoding
// error; those of corfu.Client.Append (the checkpoint is then not written,
// and chunks appended for it are left unused).
func (r *Runtime) Checkpoint(ctx context.Context, ids ...ObjectID) (storage.Address, error) {
	if _, err := r.lockSync(ctx); err != nil {
		return 0, err
	}
	err := r.syncLocked(ctx)
	var undecided *UndecidedError
	if err != nil && !errors.As(err, &undecided) && !errors.Is(err, ErrCorrupt) {
		r.unlockSync()
		return 0, err
	}
	type snap struct {
		id   ObjectID
		blob []byte
	}
	var snaps []snap
	r.mu.Lock()
	if len(ids) == 0 {
		ids = r.ids
	}
	pos, epoch := r.pos, r.posEpoch
	for _, id := range ids {
		h := r.hosts[id]
		if h == nil {
			err = fmt.Errorf("%w: object %d", ErrNotHosted, id)
			break
		}
		var blob []byte
		if blob, err = h.blob(); err != nil {
			break
		}
		snaps = append(snaps, snap{id, blob})
	}
	r.mu.Unlock()
	r.unlockSync()
	if err != nil {
		return 0, err
	}
	for _, s := range snaps {
		rec := &checkpointRecord{Object: s.id, Snapshot: pos, Epoch: epoch, Size: uint64(len(s.blob))}
		if len(s.blob) <= r.opts.ChunkBytes {
			rec.Inline = s.blob
		} else {
			for i := 0; len(s.blob) > 0; i++ {
				n := min(len(s.blob), r.opts.ChunkBytes)
				c := &chunkRecord{Object: s.id, Snapshot: pos, Index: uint64(i), Data: s.blob[:n]}
				a, err := r.c.Append(ctx, c.encode())
				if err != nil {
					return 0, fmt.Errorf("tango: checkpoint of object %d: %w", s.id, err)
				}
				rec.Chunks = append(rec.Chunks, a)
				s.blob = s.blob[n:]
			}
		}
		if _, err := r.c.Append(ctx, rec.encode(), CheckpointStream(s.id)); err != nil {
			return 0, fmt.Errorf("tango: checkpoint of object %d: %w", s.id, err)
		}
	}
	return pos, nil
}

// Trim prefix-trims the log below the latest checkpoints of the hosted
// objects (below the lowest of their starts, see above), recording the
// mark first (corfu.Client.RecordTrim), and returns it. A prefix trim takes every
// stream of the log: every object that lives in the log must be hosted
// here, or checkpointed at or above the mark by its own hosts, and any
// other stream's entries below the mark are gone.
//
// Errors: ErrNoCheckpoint if some hosted object has none; those of
// reading the checkpoint streams, corfu.Client.PrefixTrim and RecordTrim.
func (r *Runtime) Trim(ctx context.Context) (storage.Address, error) {
	r.mu.Lock()
	ids := slices.Clone(r.ids)
	r.mu.Unlock()
	proj := r.c.Projection()
	floor, err := r.c.TrimMark(ctx)
	if err != nil {
		return 0, err
	}
	all, err := r.checkpoints(ctx, ids, floor, proj, storage.MaxAddress)
	if err != nil {
		return 0, err
	}
	mark := storage.MaxAddress
	for _, id := range ids {
		cps := all[id]
		if len(cps) == 0 {
			return 0, fmt.Errorf("%w of object %d", ErrNoCheckpoint, id)
		}
		at := cps[0].from
		if r.mut.TrimAtCheckpointRecord {
			at = cps[0].addr // mutant: what lies between S and the record is lost
		}
		mark = min(mark, at)
	}
	if len(ids) == 0 || mark < floor {
		return floor, nil
	}
	// NB: recorded first, so that no reader behind the mark misses the
	// trim (see corfu.Client.RecordTrim); a trim that failed after its
	// record is done again by the next Trim.
	if mark > floor {
		if err := r.c.RecordTrim(ctx, mark); err != nil {
			return 0, err
		}
	}
	if err := r.c.PrefixTrim(ctx, mark); err != nil {
		return 0, err
	}
	return mark, nil
}

// checkpoints returns, for each object of ids, its complete checkpoints
// whose records lie at or above floor and whose starts, as of proj, lie at
// or below limit, best first: the highest start first, and of equal starts
// the newest record. It reads the checkpoint streams together, 63 at a
// time.
func (r *Runtime) checkpoints(ctx context.Context, ids []ObjectID, floor storage.Address, proj *projection.Projection, limit storage.Address) (map[ObjectID][]*checkpoint, error) {
	out := map[ObjectID][]*checkpoint{}
	const chunk = sequencer.MaxStreams - 1
	for lo := 0; lo < len(ids); lo += chunk {
		batch := ids[lo:min(lo+chunk, len(ids))]
		readers := make([]*corfu.Stream, len(batch))
		for i, id := range batch {
			readers[i] = r.c.StreamAt(CheckpointStream(id), floor, proj.Epoch)
		}
		found, err := r.c.SyncStreams(ctx, readers)
		if err != nil {
			return nil, fmt.Errorf("tango: checkpoints: %w", err)
		}
		for i, id := range batch {
			for _, e := range found[i] {
				k, ok := recordKind(e.Data)
				if !ok || k != kindCheckpoint {
					continue
				}
				rec, err := decodeCheckpoint(e.Data)
				if err != nil || rec.Object != id {
					continue
				}
				cp := &checkpoint{rec: rec, addr: e.Address, from: proj.Rewind(rec.Snapshot, rec.Epoch)}
				if cp.from <= limit {
					out[id] = append(out[id], cp)
				}
			}
			slices.SortStableFunc(out[id], func(a, b *checkpoint) int {
				if a.from != b.from {
					return -cmpAddr(a.from, b.from)
				}
				return -cmpAddr(a.addr, b.addr)
			})
		}
	}
	return out, nil
}

func cmpAddr(a, b storage.Address) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readBlob reads a checkpoint's bytes. Its chunks must be the checkpoint's
// own: written by its record's writer, for its object, position and index.
func (r *Runtime) readBlob(ctx context.Context, cp *checkpoint, writer corfu.WriterID) ([]byte, error) {
	if len(cp.rec.Chunks) == 0 {
		return cp.rec.Inline, nil
	}
	var blob []byte
	for i, a := range cp.rec.Chunks {
		e, err := r.c.Read(ctx, a)
		if err != nil {
			return nil, err
		}
		c, err := decodeChunk(e.Data)
		if k, _ := recordKind(e.Data); err != nil || k != kindChunk || e.Writer != writer ||
			c.Object != cp.rec.Object || c.Snapshot != cp.rec.Snapshot || c.Index != uint64(i) {
			return nil, fmt.Errorf("%w: chunk %d of the checkpoint at %d", errRecord, i, cp.addr)
		}
		blob = append(blob, c.Data...)
	}
	if uint64(len(blob)) != cp.rec.Size {
		return nil, fmt.Errorf("%w: checkpoint at %d has %d bytes, %d announced", errRecord, cp.addr, len(blob), cp.rec.Size)
	}
	return blob, nil
}

// load builds every hosted object again: from its best checkpoint (see
// checkpoints) unless the runtime starts from the log's start
// (Options.FromLogStart, on the first load only), else from the start of
// the log. The caller holds the readers.
func (r *Runtime) load(ctx context.Context) error {
	r.mu.Lock()
	ids := slices.Clone(r.ids)
	first := !r.everLoaded
	r.mu.Unlock()
	proj := r.c.Projection()
	type loaded struct {
		st    objectState
		v     versions
		from  storage.Address
		epoch storage.Epoch
	}
	got := map[ObjectID]loaded{}
	if !first || !r.opts.FromLogStart {
		floor, err := r.c.TrimMark(ctx)
		if err != nil {
			return fmt.Errorf("tango: load: %w", err)
		}
		all, err := r.checkpoints(ctx, ids, floor, proj, r.limit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			cps := all[id]
			r.mu.Lock()
			h := r.hosts[id]
			r.mu.Unlock()
			for _, cp := range cps {
				e, err := r.c.Read(ctx, cp.addr)
				if err != nil {
					continue // NB: trimmed meanwhile: an older one may do
				}
				blob, err := r.readBlob(ctx, cp, e.Writer)
				if err != nil {
					continue
				}
				st := h.fresh()
				v, err := decodeBlob(st, blob)
				if err != nil {
					r.opts.Logger.Warn("tango: checkpoint does not decode", "object", id, "addr", cp.addr, "err", err)
					continue
				}
				// NB: the start is as of proj, or of the checkpoint's
				// epoch if that is newer: resets up to it came before the
				// checkpoint and are in it.
				got[id] = loaded{st, v, cp.from, max(proj.Epoch, cp.rec.Epoch)}
				r.opts.Logger.Debug("tango: loading a checkpoint", "object", id, "record", cp.addr,
					"snapshot", cp.rec.Snapshot, "epoch", cp.rec.Epoch, "from", cp.from)
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		h := r.hosts[id]
		h.reset(h.fresh())
		h.epoch = proj.Epoch
		if l, ok := got[id]; ok {
			h.state, h.next, h.epoch = l.st, l.from, l.epoch
			h.lastAny, h.lastWhole, h.lastKey = l.v.lastAny, l.v.lastWhole, l.v.lastKey
		}
	}
	r.setReaders()
	r.loaded, r.everLoaded = true, true
	return nil
}

// versions are a host's versions, as a checkpoint holds them.
type versions struct {
	lastAny, lastWhole storage.Address
	lastKey            map[string]storage.Address
}

// blob encodes h's versions and state for a checkpoint: the last write of
// anything and of the whole object, the keys' last writes (sorted by key),
// then the state. The caller holds mu.
func (h *host) blob() ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(h.lastAny))
	b = binary.AppendUvarint(b, uint64(h.lastWhole))
	keys := sortedKeys(h.lastKey)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, []byte(k))
		b = binary.AppendUvarint(b, uint64(h.lastKey[k]))
	}
	s, err := h.state.encode()
	if err != nil {
		return nil, err
	}
	return append(b, s...), nil
}

// decodeBlob decodes a checkpoint's bytes: the state into st, and the
// versions it returns.
func decodeBlob(st objectState, blob []byte) (versions, error) {
	r := &recordReader{d: decoder{b: blob}}
	v := versions{lastAny: r.addr(), lastWhole: r.addr()}
	n := r.count()
	v.lastKey = make(map[string]storage.Address, n)
	for range n {
		k := string(r.bytes())
		v.lastKey[k] = r.addr()
	}
	if r.err != nil {
		return versions{}, r.err
	}
	return v, st.decode(r.d.b)
}

// snapshot builds, on the side, the runtime's objects as of pos.
func (r *Runtime) snapshot(ctx context.Context, pos storage.Address) (*Runtime, error) {
	opts := r.opts
	opts.FromLogStart = false
	s := New(r.c, opts)
	r.mu.Lock()
	for _, id := range r.ids {
		h := r.hosts[id]
		c := &host{id: h.id, streams: h.streams, fresh: h.fresh}
		c.reset(h.fresh())
		s.hosts[id] = c
		s.ids = append(s.ids, id)
	}
	r.mu.Unlock()
	s.limit = pos
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos < pos {
		return nil, fmt.Errorf("tango: snapshot at %d: %w: the objects' streams end at %d", pos, corfu.ErrBeyondTail, s.pos)
	}
	return s, nil
}
