package corfu

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/corfulog/corfu/internal/sysenv"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Defaults for the zero values of Config. A writer's per-hop timeout is kept
// well below a reader's hole-fill wait, so a reader does not junk-fill an
// address whose writer is merely slow.
const (
	DefaultMaxRetries    = 16
	DefaultRPCTimeout    = 250 * time.Millisecond
	DefaultHoleFillWait  = 2 * time.Second
	DefaultBackoff       = 5 * time.Millisecond
	DefaultMaxBackoff    = 200 * time.Millisecond
	DefaultFollowPoll    = 10 * time.Millisecond
	DefaultFollowWait    = 500 * time.Millisecond
	DefaultWindow        = 1024
	DefaultMaxBatch      = 256
	DefaultMaxBatchBytes = 1 << 20
	DefaultBatches       = 4
	// MaxBatch is the largest Config.MaxBatch: a unit takes at most this
	// many writes in one request.
	MaxBatch                = transport.MaxBatchItems
	entryHeaderReserveBytes = 64 << 10
	// DefaultMaxEntryBytes is the largest payload Append accepts by default:
	// a unit's limit less room for the largest entry header (MaxStreams
	// streams with MaxBackpointers backpointers each).
	DefaultMaxEntryBytes = storage.MaxEntryBytes - entryHeaderReserveBytes
	// MaxBackpointers is the largest Config.Backpointers: an entry keeps at
	// most this many backpointers per stream.
	MaxBackpointers = 64
)

// NB: the reserve must hold the largest header, or an Append within
// MaxEntryBytes could be refused by the units; this fails to compile if not.
var _ [entryHeaderReserveBytes - maxEntryHeaderBytes]struct{}

// Config configures a Client. Its zero value is not usable: Layout and
// Transport are required. Every other field has a documented default, filled
// in by Open. A Config prints in full with %+v, for simulator repros.
type Config struct {
	// Layout lists the layout servers the client fetches the projection
	// from. Required.
	Layout []projection.NodeID
	// Transport carries every request. Required. If it implements
	// io.Closer, Client.Close closes it: a Transport shared by several
	// clients must not, or must be wrapped in one that does not.
	Transport transport.Caller
	// Env supplies time, timers, tasks and randomness. Default: the system
	// environment, with randomness seeded from Seed.
	Env Env
	// Writer identifies this client's entries: every entry it appends
	// carries Writer and the number of its Append call, and a retried
	// write recognises its own entry by them. Two clients must never share
	// a Writer. Default: drawn at Open, from crypto/rand with the system
	// environment and from Env's randomness when Env is set (so that a
	// simulated run is reproducible): clients given Envs seeded alike must
	// be given distinct Writers.
	Writer WriterID
	// Seed seeds the default Env's randomness (retry jitter). Ignored when
	// Env is set.
	Seed uint64
	// Logger receives debug and warning records. Default: discard.
	Logger *slog.Logger
	// Hooks observe the client's appends, reads, retries, projection
	// refreshes, reconfigurations and detector actions, for metrics: each
	// implements any of the Hook* interfaces (see Hook). A hook that
	// implements none is an invalid Config. Default: none, at no cost.
	Hooks []Hook
	// MaxRetries bounds the attempts of one operation: fresh tokens for an
	// append, projection refreshes, and retries of one unanswered request.
	// Default DefaultMaxRetries.
	MaxRetries int
	// RPCTimeout bounds one request to one server. Default DefaultRPCTimeout.
	RPCTimeout time.Duration
	// HoleFillWait is how long a reader waits for an issued but unwritten
	// address to be written before it fills it with junk. It must be at least
	// four times RPCTimeout. Default DefaultHoleFillWait.
	HoleFillWait time.Duration
	// Backoff is the first delay between retries; it doubles up to
	// MaxBackoff, with jitter. Defaults DefaultBackoff and DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// FollowWait is how long Follow, once it has caught up, waits at the
	// unit for the next entry (a read the unit parks until the entry is
	// written: see transport.ReadWaits) before it asks for the tail again.
	// Default DefaultFollowWait; at most transport.MaxReadWait.
	FollowWait time.Duration
	// FollowPoll is how often Follow asks for a new tail once it has caught
	// up, where the unit cannot park its read (or failed to answer it).
	// Default DefaultFollowPoll.
	FollowPoll time.Duration
	// MaxEntryBytes bounds the payload of one Append. Default and maximum
	// DefaultMaxEntryBytes.
	MaxEntryBytes int
	// Backpointers is K, the number of addresses per stream that an entry
	// records and that stream readers rely on to know when a backpointer
	// list reaches a stream's start. It must not exceed the sequencer's
	// (sequencer.Config.Backpointers): a sequencer that keeps fewer would
	// make readers miss entries. An entry keeps the newest K of what the
	// sequencer returns. At most MaxBackpointers; default
	// sequencer.DefaultBackpointers. A projection that names K
	// (projection.Projection.Backpointers) overrides it, so that clients
	// cannot disagree with the sequencer.
	Backpointers int
	// Window bounds the appends AppendAsync keeps in flight (accepted and
	// not done): AppendAsync waits for room, TryAppendAsync fails with
	// ErrWindowFull. Default DefaultWindow.
	Window int
	// MaxBatch and MaxBatchBytes bound one batch of AppendAsync's appends
	// (entries, and payload bytes; a batch holds at least one entry,
	// however large). Defaults DefaultMaxBatch (at most MaxBatch) and
	// DefaultMaxBatchBytes (at most storage.MaxEntryBytes).
	MaxBatch, MaxBatchBytes int
	// Batches bounds the batches of AppendAsync in flight at once; appends
	// accepted meanwhile wait for the next batch. Default DefaultBatches.
	Batches int
}

// validate fills in defaults and reports a Config that cannot work.
func (c *Config) validate() error {
	if len(c.Layout) == 0 {
		return fmt.Errorf("%w: no layout servers", ErrInvalidConfig)
	}
	if c.Transport == nil {
		return fmt.Errorf("%w: no transport", ErrInvalidConfig)
	}
	if c.Env == nil {
		c.Env = systemEnv{sysenv.New(c.Seed)}
		for c.Writer == 0 {
			var b [8]byte
			_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand)
			c.Writer = WriterID(binary.LittleEndian.Uint64(b[:]))
		}
	}
	for c.Writer == 0 {
		c.Writer = WriterID(c.Env.Rand().Uint64())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	setDefault(&c.MaxRetries, DefaultMaxRetries)
	setDefault(&c.RPCTimeout, DefaultRPCTimeout)
	setDefault(&c.HoleFillWait, DefaultHoleFillWait)
	setDefault(&c.Backoff, DefaultBackoff)
	setDefault(&c.MaxBackoff, DefaultMaxBackoff)
	setDefault(&c.FollowPoll, DefaultFollowPoll)
	setDefault(&c.FollowWait, DefaultFollowWait)
	setDefault(&c.MaxEntryBytes, DefaultMaxEntryBytes)
	setDefault(&c.Backpointers, sequencer.DefaultBackpointers)
	setDefault(&c.Window, DefaultWindow)
	setDefault(&c.MaxBatch, DefaultMaxBatch)
	setDefault(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	setDefault(&c.Batches, DefaultBatches)
	switch {
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d < 0", ErrInvalidConfig, c.MaxRetries)
	case c.RPCTimeout < 0, c.HoleFillWait < 0, c.Backoff < 0, c.MaxBackoff < 0, c.FollowPoll < 0, c.FollowWait < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case c.FollowWait > transport.MaxReadWait:
		return fmt.Errorf("%w: FollowWait %v above transport.MaxReadWait %v", ErrInvalidConfig, c.FollowWait, transport.MaxReadWait)
	case c.HoleFillWait/4 < c.RPCTimeout:
		return fmt.Errorf("%w: HoleFillWait %v is below 4 x RPCTimeout %v: readers would fill holes of slow writers",
			ErrInvalidConfig, c.HoleFillWait, c.RPCTimeout)
	case c.MaxEntryBytes < 0 || c.MaxEntryBytes > DefaultMaxEntryBytes:
		return fmt.Errorf("%w: MaxEntryBytes %d outside [0, %d]", ErrInvalidConfig, c.MaxEntryBytes, DefaultMaxEntryBytes)
	case c.Backpointers < 1 || c.Backpointers > MaxBackpointers:
		return fmt.Errorf("%w: Backpointers %d outside [1, %d]", ErrInvalidConfig, c.Backpointers, MaxBackpointers)
	case c.Window < 1, c.Batches < 1:
		return fmt.Errorf("%w: Window %d and Batches %d must be positive", ErrInvalidConfig, c.Window, c.Batches)
	case c.MaxBatch < 1 || c.MaxBatch > MaxBatch:
		return fmt.Errorf("%w: MaxBatch %d outside [1, %d]", ErrInvalidConfig, c.MaxBatch, MaxBatch)
	case c.MaxBatchBytes < 1 || c.MaxBatchBytes > storage.MaxEntryBytes:
		return fmt.Errorf("%w: MaxBatchBytes %d outside [1, %d]", ErrInvalidConfig, c.MaxBatchBytes, storage.MaxEntryBytes)
	case c.MaxBackoff < c.Backoff:
		return fmt.Errorf("%w: MaxBackoff %v below Backoff %v", ErrInvalidConfig, c.MaxBackoff, c.Backoff)
	}
	return nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}
