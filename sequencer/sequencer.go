package sequencer

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/corfulog/corfu/storage"
)

// StreamID names a stream: a sub-log of the shared log whose entries are
// linked by backpointers.
type StreamID uint64

// DefaultBackpointers is the number of recent addresses the sequencer keeps
// per stream when Config.Backpointers is zero.
const DefaultBackpointers = 4

// MaxBackpointers is the largest Config.Backpointers a sequencer accepts.
const MaxBackpointers = 256

// MaxBatch is the largest number of tokens one Next call hands out.
const MaxBatch = 1 << 16

// MaxStreams is the largest number of streams one Next call may name.
const MaxStreams = 64

var (
	// ErrNotReady reports that the sequencer has not been bootstrapped in
	// the request's epoch (or at all) and hands out no tokens yet.
	ErrNotReady = errors.New("sequencer: not bootstrapped in this epoch")
	// ErrRestarted reports a bootstrap meant for an earlier start of the
	// sequencer (see Config.Incarnation): the reconfiguration that sent it
	// sealed a sequencer that has restarted since.
	ErrRestarted = errors.New("sequencer: restarted since the seal")
	// ErrInvalid reports a malformed request: a batch above MaxBatch, too
	// many streams, or a stream named twice in Next; a tail at or above
	// storage.MaxAddress or malformed stream tails in Bootstrap.
	ErrInvalid = errors.New("sequencer: invalid request")
)

// StreamTail is the most recent addresses of one stream, newest first.
type StreamTail struct {
	Stream StreamID
	Addrs  []storage.Address
}

// Token is the answer to Next: Start is the first of the n addresses handed
// out; Backpointers holds, for each stream named in the request and in the
// request's order, its most recent addresses before Start, newest first.
type Token struct {
	Start        storage.Address
	Backpointers []StreamTail
}

// Config configures a Sequencer. The zero Config is valid.
type Config struct {
	// Backpointers is K, the number of recent addresses kept and returned
	// per stream. Zero means DefaultBackpointers; it must not be negative
	// or above MaxBackpointers.
	Backpointers int
	// Reserve is how far ahead of the tail the sequencer reserves
	// addresses (see Mark). Zero means DefaultReserve.
	Reserve int
	// Floor restarts a sequencer that lost its state: it is the last Mark
	// its host made durable. The restarted sequencer reports it as its tail
	// when sealed, so the next epoch never hands out an address the lost
	// state may have handed out, and Lost reports true until a Bootstrap.
	Floor storage.Address
	// Recovered says that Floor is the last durable mark of a sequencer
	// that ran before, even if it is zero. A sequencer started with neither
	// (Floor zero, Recovered false) holds no mark: its seal reports NoMark
	// until a Bootstrap, so that a reconfiguration does not trust its tail.
	Recovered bool
	// Booted is, for a Recovered sequencer, the epoch of its last
	// Bootstrap before Floor was saved (State.Booted). Epochs are run one
	// sequencer at a time: the restarted sequencer vouches for its Floor
	// only at a seal of the epoch after Booted, since in any later one
	// another sequencer may have handed out addresses above it, and its
	// seal at those reports NoMark. A host that saved no Booted passes
	// zero, which vouches at most for epoch 1.
	Booted storage.Epoch
	// Incarnation names this start of the sequencer, different for every
	// start of every sequencer of a cluster (a host might take a random
	// number, or a counter it keeps durable), and below 1<<62. A seal
	// reports it; a reconfiguration bootstraps only the incarnation it
	// sealed (the Server checks), so a bootstrap retried after the
	// sequencer restarted cannot hand its old state to a fresh one. Zero
	// turns the check off.
	Incarnation uint64
}

// DefaultReserve is Config.Reserve's default.
const DefaultReserve = 64

// validate fills in defaults and checks the ranges.
func (c *Config) validate() error {
	if c.Backpointers == 0 {
		c.Backpointers = DefaultBackpointers
	}
	if c.Reserve == 0 {
		c.Reserve = DefaultReserve
	}
	if c.Reserve < 0 || c.Reserve > MaxBatch {
		return fmt.Errorf("%w: reserve %d outside [0, %d]", ErrInvalid, c.Reserve, MaxBatch)
	}
	if c.Incarnation >= 1<<62 {
		return fmt.Errorf("%w: incarnation %d at or above 1<<62", ErrInvalid, c.Incarnation)
	}
	if c.Floor >= storage.MaxAddress {
		return fmt.Errorf("%w: floor %d at or above storage.MaxAddress", ErrInvalid, c.Floor)
	}
	if c.Backpointers < 0 || c.Backpointers > MaxBackpointers {
		return fmt.Errorf("sequencer: Config.Backpointers %d outside [0, %d]", c.Backpointers, MaxBackpointers)
	}
	return nil
}

// Sequencer hands out tokens: consecutive global addresses of the shared log,
// with the recent addresses of the streams each token's entries belong to.
//
// Its state is soft. A new Sequencer is at epoch 0 and not ready; it hands
// out tokens only once it has been bootstrapped (Bootstrap) in the epoch the
// requests carry. Seal moves it to a new epoch and stops it until it is
// bootstrapped again.
//
// A Sequencer is a plain synchronous state machine and safe for concurrent
// use.
type Sequencer struct {
	mu      sync.Mutex
	k       int
	epoch   storage.Epoch
	ready   bool
	tail    storage.Address                // the next address to hand out
	streams map[StreamID][]storage.Address // newest first, at most k each, never empty
	reserve storage.Address
	mark    storage.Address // tail <= mark: no address at or above it was handed out
	lost    bool            // not bootstrapped since New: its stream tails are empty, whatever was handed out
	noMark  bool            // lost, and started without a Floor: its tail vouches for nothing
	inc     uint64          // Config.Incarnation
	booted  storage.Epoch   // the epoch of the last Bootstrap (Config.Booted while lost)
}

// New returns a sequencer at epoch 0 that is not ready. It panics if cfg is
// out of range (see Config).
func New(cfg Config) *Sequencer {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Sequencer{k: cfg.Backpointers, streams: make(map[StreamID][]storage.Address),
		reserve: storage.Address(cfg.Reserve), tail: cfg.Floor, mark: cfg.Floor,
		lost: true, noMark: cfg.Floor == 0 && !cfg.Recovered, inc: cfg.Incarnation, booted: cfg.Booted}
}

// State is the part of a sequencer's state its host makes durable, so that
// a restart (Config.Floor, Config.Booted) never hands out an address it may
// have handed out before.
type State struct {
	// Mark is the reservation mark (Sequencer.Mark).
	Mark storage.Address
	// Booted is the epoch of the sequencer's last Bootstrap (Config.Booted
	// of a sequencer restarted and not bootstrapped since).
	Booted storage.Epoch
}

// State returns the state a host makes durable before it answers the
// request that changed it.
func (s *Sequencer) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{Mark: s.mark, Booted: s.booted}
}

// Booted returns the epoch of the sequencer's last Bootstrap, or
// Config.Booted if it has not been bootstrapped since New.
func (s *Sequencer) Booted() storage.Epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.booted
}

// Mark returns the reservation mark: no address at or above it has been
// handed out. It moves up by Config.Reserve at a time, once fewer than half
// of Config.Reserve addresses lie between the tail and it (and at once past
// a batch that went beyond it), so it stays between half a reserve and a
// reserve and a half ahead of the tail. A host that wants its sequencer to
// survive a restart makes the mark durable whenever it moves, before it
// answers a request whose tokens reach the last mark it made durable, and
// restarts the sequencer with Config.Floor set to it (see
// transport.Server.Persist).
func (s *Sequencer) Mark() storage.Address {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark
}

// Lost reports whether the sequencer has not been bootstrapped since New:
// it holds no stream tails it can vouch for, and its tail is its Floor (see
// SealResult).
func (s *Sequencer) Lost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// Incarnation returns Config.Incarnation.
func (s *Sequencer) Incarnation() uint64 { return s.inc }

// NoMark reports whether the sequencer has no reservation mark to vouch
// for its tail: it started with no Floor and has not been bootstrapped
// since. A host that restarts such a sequencer has no mark to restart it
// from either.
func (s *Sequencer) NoMark() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noMark
}

// checkEpoch compares a request's epoch with the current one. s.mu is held.
func (s *Sequencer) checkEpoch(epoch storage.Epoch) error {
	switch {
	case epoch < s.epoch:
		return &storage.SealedError{Epoch: s.epoch}
	case epoch > s.epoch:
		return fmt.Errorf("%w: request epoch %d, sequencer epoch %d", ErrNotReady, epoch, s.epoch)
	case !s.ready:
		return fmt.Errorf("%w: epoch %d", ErrNotReady, epoch)
	}
	return nil
}

// Next hands out n consecutive addresses [Start, Start+n) for entries that
// belong to every stream in streams. The token's Backpointers hold, for each
// named stream in order, its last K addresses before Start, newest first (nil
// for a stream with no entries yet); then each of the n addresses is recorded
// as the newest of every named stream. Tokens never repeat.
//
// n == 0 is a query: Start is the tail (the next address to be handed out),
// Backpointers are the streams' last K addresses, and nothing changes.
//
// Next returns a *storage.SealedError carrying the current epoch if epoch is
// older than it; ErrNotReady if epoch is newer or the sequencer has not been
// bootstrapped in it; and ErrInvalid if n is negative or above MaxBatch, if
// streams names more than MaxStreams streams or one stream twice, or if the
// batch would reach storage.MaxAddress.
func (s *Sequencer) Next(epoch storage.Epoch, n int, streams []StreamID) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkEpoch(epoch); err != nil {
		return Token{}, err
	}
	if err := checkRequest(n, streams); err != nil {
		return Token{}, err
	}
	if uint64(n) > uint64(storage.MaxAddress-s.tail) {
		return Token{}, fmt.Errorf("%w: batch of %d at tail %d would reach storage.MaxAddress", ErrInvalid, n, s.tail)
	}
	tok := Token{Start: s.tail}
	if len(streams) > 0 {
		tok.Backpointers = make([]StreamTail, len(streams))
		for i, id := range streams {
			tok.Backpointers[i] = StreamTail{Stream: id, Addrs: slices.Clone(s.streams[id])}
		}
	}
	if n == 0 {
		return tok, nil
	}
	for _, id := range streams {
		s.record(id, s.tail, n)
	}
	s.tail += storage.Address(n)
	// NB: the mark moves while half the reserve still lies ahead of the
	// tail, so that a host can make the new mark durable while it hands
	// out tokens below the old one.
	if s.tail > s.mark || s.mark-s.tail < (s.reserve+1)/2 {
		s.mark = min(max(s.tail, s.mark)+s.reserve, storage.MaxAddress)
	}
	return tok, nil
}

// checkRequest checks the shape of a Next request.
func checkRequest(n int, streams []StreamID) error {
	if n < 0 || n > MaxBatch {
		return fmt.Errorf("%w: batch of %d tokens outside [0, %d]", ErrInvalid, n, MaxBatch)
	}
	if len(streams) > MaxStreams {
		return fmt.Errorf("%w: %d streams, limit %d", ErrInvalid, len(streams), MaxStreams)
	}
	for i, id := range streams {
		if slices.Contains(streams[:i], id) {
			return fmt.Errorf("%w: stream %d named twice", ErrInvalid, id)
		}
	}
	return nil
}

// record notes that [start, start+n) belong to stream id, keeping the newest
// k addresses. s.mu is held.
func (s *Sequencer) record(id StreamID, start storage.Address, n int) {
	old := s.streams[id]
	m := min(n, s.k)
	keep := min(len(old), s.k-m)
	buf := old
	if cap(buf) < m+keep {
		buf = make([]storage.Address, s.k)
	}
	buf = buf[:m+keep]
	// NB: copy moves the kept addresses before the new ones overwrite them;
	// buf and old may share memory, and copy handles the overlap.
	copy(buf[m:], old[:keep])
	for i := range m {
		buf[i] = start + storage.Address(n-1-i)
	}
	s.streams[id] = buf
}

// SealResult is what a sealed sequencer reports to a reconfiguration, read
// under one lock so that it describes one state.
type SealResult struct {
	// Tail is the next address the sequencer would hand out.
	Tail storage.Address
	// Tails holds every stream the sequencer knows with its last K
	// addresses, newest first, sorted by StreamID.
	Tails []StreamTail
	// Lost says the sequencer has not been bootstrapped since it started
	// (its stream tails are empty whatever the log holds, and Tail is its
	// Floor), or that it did not run the epoch before the sealed one. The
	// next epoch must rebuild the streams' tails from the log.
	Lost bool
	// NoMark says Lost, and that Tail vouches for nothing: the sequencer
	// started without a Floor (no durable reservation mark), or did not run
	// the epoch before the sealed one (another sequencer may have handed
	// out addresses there). Only the storage units bound what was written.
	NoMark bool
	// Incarnation is Config.Incarnation: a bootstrap that follows this seal
	// names it, so that it reaches this start of the sequencer and no
	// later one.
	Incarnation uint64
}

// Seal moves the sequencer to epoch and stops it: until it is bootstrapped in
// epoch it answers Next with ErrNotReady. It reports its state (see
// SealResult).
//
// Sealing the current epoch again changes nothing and reports the same
// state: a duplicate or late seal of the epoch a sequencer was bootstrapped
// in leaves it ready, since everything that seal fences was fenced by the
// first.
//
// Seal returns a *storage.SealedError carrying the current epoch if epoch is
// older than it.
func (s *Sequencer) Seal(epoch storage.Epoch) (SealResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.epoch {
		return SealResult{}, &storage.SealedError{Epoch: s.epoch}
	}
	if epoch > s.epoch {
		s.epoch = epoch
		s.ready = false
	}
	// NB: epochs are contiguous. A sequencer that did not run the epoch
	// before the one it is sealed at (another one did, or it was never
	// bootstrapped there) vouches for nothing of it: its state is stale.
	// So is a restarted one's mark, by the epoch it last ran in
	// (Config.Booted): its tail bounds no epoch after that one.
	stale := !s.noMark && s.booted+1 < epoch
	return SealResult{Tail: s.tail, Tails: s.streamTails(), Lost: s.lost || stale, NoMark: s.noMark || stale,
		Incarnation: s.inc}, nil
}

// Bootstrap moves the sequencer to epoch and makes it ready to hand out
// tokens there. The tail becomes the larger of tail and the current tail:
// bootstrapping never lowers it, so a sequencer never hands out an address
// twice. The streams' recent addresses become tails: what the sequencer
// knew of its own is dropped, since it may be stale (a standby's, or one
// from before a tail reset, whose addresses were handed out again since).
// Bootstrapping the epoch it runs in again (a retried or duplicated
// bootstrap) keeps what it handed out since: each stream gets the K newest
// of the union of tails and what it knows.
//
// Bootstrap returns a *storage.SealedError carrying the current epoch if epoch
// is older than it, and ErrInvalid if tail is at or above storage.MaxAddress,
// if tails names a stream twice, or if a stream address is at or above the
// resulting tail. On error nothing changes.
func (s *Sequencer) Bootstrap(epoch storage.Epoch, tail storage.Address, tails []StreamTail) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.epoch {
		return &storage.SealedError{Epoch: s.epoch}
	}
	if tail >= storage.MaxAddress {
		return fmt.Errorf("%w: tail %d at or above storage.MaxAddress", ErrInvalid, tail)
	}
	tail = max(tail, s.tail)
	for i, st := range tails {
		for _, prev := range tails[:i] {
			if prev.Stream == st.Stream {
				return fmt.Errorf("%w: stream %d appears twice in tails", ErrInvalid, st.Stream)
			}
		}
		for _, a := range st.Addrs {
			if a >= tail {
				return fmt.Errorf("%w: stream %d address %d at or above tail %d", ErrInvalid, st.Stream, a, tail)
			}
		}
	}
	if again := epoch == s.epoch && s.ready; !again {
		clear(s.streams)
	}
	for _, st := range tails {
		if merged := s.merge(s.streams[st.Stream], st.Addrs); len(merged) > 0 {
			s.streams[st.Stream] = merged
		}
	}
	s.epoch = epoch
	s.tail = tail
	s.mark = max(s.mark, tail)
	s.lost, s.noMark = false, false
	s.booted = epoch
	s.ready = true
	return nil
}

// merge returns the newest k distinct addresses of a and b, newest first.
func (s *Sequencer) merge(a, b []storage.Address) []storage.Address {
	all := make([]storage.Address, 0, len(a)+len(b))
	all = append(all, a...)
	all = append(all, b...)
	slices.SortFunc(all, func(x, y storage.Address) int {
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	all = slices.Compact(all)
	if len(all) > s.k {
		all = all[:s.k]
	}
	return slices.Clip(all)
}

// Epoch returns the sequencer's current epoch.
func (s *Sequencer) Epoch() storage.Epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Ready reports whether the sequencer has been bootstrapped in its current
// epoch and hands out tokens.
func (s *Sequencer) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Tail returns the next address the sequencer would hand out.
func (s *Sequencer) Tail() storage.Address {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail
}

// StreamTails returns every stream the sequencer knows with its last K
// addresses, newest first, sorted by StreamID. The result is the caller's.
func (s *Sequencer) StreamTails() []StreamTail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamTails()
}

// streamTails is StreamTails with s.mu held.
func (s *Sequencer) streamTails() []StreamTail {
	ids := make([]StreamID, 0, len(s.streams))
	for id := range s.streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]StreamTail, len(ids))
	for i, id := range ids {
		out[i] = StreamTail{Stream: id, Addrs: slices.Clone(s.streams[id])}
	}
	return out
}
