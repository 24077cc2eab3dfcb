package corfu_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/inproc"
)

func TestAppendReadRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		opts    corfutest.Options
		data    []byte
		streams []corfu.StreamID
	}{
		{name: "default cluster", data: []byte("hello")},
		{name: "empty entry", data: []byte{}},
		{name: "one unit", opts: corfutest.Options{Units: 1, Replicas: 1}, data: []byte("solo")},
		{name: "chains of three", opts: corfutest.Options{Units: 3, Replicas: 3}, data: []byte("triple")},
		{name: "in streams", data: []byte("streamed"), streams: []corfu.StreamID{7, 9}},
		{name: "binary", data: []byte{0, 1, 0xff, 0x80, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts, nil)
			a, err := e.c.Append(e.ctx, tt.data, tt.streams...)
			require.NoError(t, err)
			assert.Equal(t, storage.Address(0), a)
			got, err := e.c.Read(e.ctx, a)
			require.NoError(t, err)
			assert.Equal(t, a, got.Address)
			assert.Equal(t, tt.data, got.Data)
			assert.NotNil(t, got.Data, "an empty entry reads back non-nil")
			assert.Equal(t, tt.streams, got.Streams)
			for _, s := range tt.streams {
				assert.True(t, got.In(s))
			}
			assert.False(t, got.In(12345))
			for _, r := range e.chain(a) {
				s, _ := r.unit.Inspect(r.local)
				assert.Equal(t, storage.StateData, s, "replica %s", r.id)
			}
		})
	}
}

func TestAppendConsecutiveAddresses(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	const n = 50
	for i := range n {
		a, err := e.c.Append(e.ctx, fmt.Appendf(nil, "entry %d", i))
		require.NoError(t, err)
		require.Equal(t, storage.Address(i), a)
	}
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(n), tail)
	for i := range n {
		got, err := e.c.Read(e.ctx, storage.Address(i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("entry %d", i), string(got.Data))
	}
}

func TestTail(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(0), tail, "empty log")
	e.token(3) // handed out, never written: still below the tail
	tail, err = e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(3), tail)
	a, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	assert.Equal(t, storage.Address(3), a)
	tail, err = e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(4), tail)
}

func TestReadPastTailIsUnwrittenAtOnce(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) {
		// A read that waited for a hole would run past this.
		c.RPCTimeout = 250 * time.Millisecond
		c.HoleFillWait = time.Hour
	})
	_, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	for _, addr := range []storage.Address{1, 2, 1000, storage.MaxAddress - 1} {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		_, err := e.c.Read(ctx, addr)
		cancel()
		require.ErrorIs(t, err, corfu.ErrUnwritten, "address %d", addr)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
	}
	for a := range storage.Address(4) {
		assert.Equal(t, []storage.State{storage.StateUnwritten, storage.StateUnwritten}, e.state(a+1), "no fill at %d", a+1)
	}
	assert.Zero(t, e.net.count(transport.OpFill))
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	_, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	tooMany := make([]corfu.StreamID, sequencer.MaxStreams+1)
	for i := range tooMany {
		tooMany[i] = corfu.StreamID(i)
	}
	maxStreams := tooMany[:sequencer.MaxStreams]
	tests := []struct {
		name string
		do   func(ctx context.Context) error
		want error
	}{
		{name: "append nil", want: corfu.ErrNilData, do: func(ctx context.Context) error {
			_, err := e.c.Append(ctx, nil)
			return err
		}},
		{name: "append too large", want: corfu.ErrTooLarge, do: func(ctx context.Context) error {
			_, err := e.c.Append(ctx, make([]byte, corfu.DefaultMaxEntryBytes+1))
			return err
		}},
		{name: "append too many streams", want: corfu.ErrInvalidStreams, do: func(ctx context.Context) error {
			_, err := e.c.Append(ctx, []byte("x"), tooMany...)
			return err
		}},
		{name: "append duplicate stream", want: corfu.ErrInvalidStreams, do: func(ctx context.Context) error {
			_, err := e.c.Append(ctx, []byte("x"), 1, 2, 1)
			return err
		}},
		{name: "read max address", want: corfu.ErrInvalidAddress, do: func(ctx context.Context) error {
			_, err := e.c.Read(ctx, storage.MaxAddress)
			return err
		}},
		{name: "read top address", want: corfu.ErrInvalidAddress, do: func(ctx context.Context) error {
			_, err := e.c.Read(ctx, ^storage.Address(0))
			return err
		}},
		{name: "fill max address", want: corfu.ErrInvalidAddress, do: func(ctx context.Context) error {
			return e.c.Fill(ctx, storage.MaxAddress)
		}},
		{name: "trim max address", want: corfu.ErrInvalidAddress, do: func(ctx context.Context) error {
			return e.c.Trim(ctx, storage.MaxAddress)
		}},
		{name: "prefix trim max address", want: corfu.ErrInvalidAddress, do: func(ctx context.Context) error {
			return e.c.PrefixTrim(ctx, storage.MaxAddress)
		}},
		{name: "fill at tail", want: corfu.ErrBeyondTail, do: func(ctx context.Context) error {
			return e.c.Fill(ctx, 1)
		}},
		{name: "fill beyond tail", want: corfu.ErrBeyondTail, do: func(ctx context.Context) error {
			return e.c.Fill(ctx, 100)
		}},
		{name: "trim at tail", want: corfu.ErrBeyondTail, do: func(ctx context.Context) error {
			return e.c.Trim(ctx, 1)
		}},
		{name: "trim beyond tail", want: corfu.ErrBeyondTail, do: func(ctx context.Context) error {
			return e.c.Trim(ctx, storage.MaxAddress-1)
		}},
		{name: "prefix trim above tail", want: corfu.ErrBeyondTail, do: func(ctx context.Context) error {
			return e.c.PrefixTrim(ctx, 2)
		}},
		{name: "stream append nil", want: corfu.ErrNilData, do: func(ctx context.Context) error {
			_, err := e.c.Stream(1, 0).Append(ctx, nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.do(e.ctx) })
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "corfu: ", "errors name the package")
		})
	}

	// None of the rejected calls wrote or took anything.
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(1), tail)

	t.Run("largest entry in the most streams", func(t *testing.T) {
		big := bytes.Repeat([]byte{0xa5}, corfu.DefaultMaxEntryBytes)
		// Give every stream a full list of backpointers first.
		for range 4 {
			_, err := e.c.Append(e.ctx, []byte("x"), maxStreams...)
			require.NoError(t, err)
		}
		a, err := e.c.Append(e.ctx, big, maxStreams...)
		require.NoError(t, err)
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		assert.Equal(t, big, got.Data)
		assert.Equal(t, maxStreams, got.Streams)
	})

	t.Run("prefix trim at tail", func(t *testing.T) {
		tail, err := e.c.Tail(e.ctx)
		require.NoError(t, err)
		require.NoError(t, e.c.PrefixTrim(e.ctx, tail))
		_, err = e.c.Read(e.ctx, tail-1)
		require.ErrorIs(t, err, corfu.ErrTrimmed)
	})
}

func TestConfigValidate(t *testing.T) {
	cl, err := corfutest.New(corfutest.Options{})
	require.NoError(t, err)
	tests := []struct {
		name string
		edit func(c *corfu.Config)
		ok   bool
	}{
		{name: "defaults", edit: func(c *corfu.Config) {}, ok: true},
		{name: "no layout servers", edit: func(c *corfu.Config) { c.Layout = nil }},
		{name: "no transport", edit: func(c *corfu.Config) { c.Transport = nil }},
		{name: "negative retries", edit: func(c *corfu.Config) { c.MaxRetries = -1 }},
		{name: "negative rpc timeout", edit: func(c *corfu.Config) { c.RPCTimeout = -1 }},
		{name: "negative hole fill wait", edit: func(c *corfu.Config) { c.HoleFillWait = -1 }},
		{name: "negative backoff", edit: func(c *corfu.Config) { c.Backoff = -1 }},
		{name: "negative max backoff", edit: func(c *corfu.Config) { c.MaxBackoff = -1 }},
		{name: "negative follow poll", edit: func(c *corfu.Config) { c.FollowPoll = -1 }},
		{name: "hole fill wait below 4 rpc timeouts", edit: func(c *corfu.Config) {
			c.RPCTimeout, c.HoleFillWait = time.Second, 3*time.Second
		}},
		{name: "hole fill wait exactly 4 rpc timeouts", ok: true, edit: func(c *corfu.Config) {
			c.RPCTimeout, c.HoleFillWait = time.Second, 4*time.Second
		}},
		{name: "rpc timeout above default hole fill wait", edit: func(c *corfu.Config) { c.RPCTimeout = time.Second }},
		{name: "huge rpc timeout", edit: func(c *corfu.Config) {
			c.RPCTimeout, c.HoleFillWait = 1<<62, time.Second
		}},
		{name: "negative max entry bytes", edit: func(c *corfu.Config) { c.MaxEntryBytes = -1 }},
		{name: "max entry bytes above limit", edit: func(c *corfu.Config) { c.MaxEntryBytes = corfu.DefaultMaxEntryBytes + 1 }},
		{name: "max entry bytes at limit", ok: true, edit: func(c *corfu.Config) { c.MaxEntryBytes = corfu.DefaultMaxEntryBytes }},
		{name: "negative backpointers", edit: func(c *corfu.Config) { c.Backpointers = -1 }},
		{name: "too many backpointers", edit: func(c *corfu.Config) { c.Backpointers = 1000 }},
		{name: "max backoff below backoff", edit: func(c *corfu.Config) {
			c.Backoff, c.MaxBackoff = time.Second, time.Millisecond
		}},
		{name: "backoff above default max backoff", edit: func(c *corfu.Config) { c.Backoff = time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cl.Config()
			tt.edit(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			c, err := corfu.Open(ctx, cfg)
			if tt.ok {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.ErrorIs(t, err, corfu.ErrInvalidConfig)
			assert.Nil(t, c)
		})
	}
}

func TestConfigPrints(t *testing.T) {
	cfg := corfu.Config{Layout: []projection.NodeID{"a"}, RPCTimeout: time.Second, Seed: 7}
	s := fmt.Sprintf("%+v", cfg)
	for _, want := range []string{"Layout:[a]", "RPCTimeout:1s", "Seed:7", "HoleFillWait:"} {
		assert.Contains(t, s, want)
	}
}

func TestOpenUnreachable(t *testing.T) {
	tests := []struct {
		name        string
		net         transport.Caller
		unreachable bool
	}{
		{name: "no such node", net: inproc.New(), unreachable: true},
		{name: "node hangs", net: &faultNet{next: inproc.New(), rule: func(transport.NodeID, *transport.Request) action { return hang }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(corfu.Config{Layout: []projection.NodeID{"layout0", "layout1"}, Transport: tt.net})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			start := time.Now()
			c, err := corfu.Open(ctx, cfg)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, corfu.ErrRetriesExhausted)
			if tt.unreachable {
				assert.ErrorIs(t, err, transport.ErrUnreachable)
			}
			assert.NoError(t, ctx.Err(), "gave up on its own, before the caller's deadline")
			assert.Less(t, time.Since(start), time.Second)
		})
	}

	t.Run("caller deadline", func(t *testing.T) {
		cfg := corfu.Config{Layout: []projection.NodeID{"layout0"}, Transport: inproc.New()} // default, slow retries
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := corfu.Open(ctx, cfg)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestProjectionIsACopy(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	p := e.c.Projection()
	require.True(t, p.Equal(e.cl.Projection))
	p.Segments[0].Stripes[0][0] = "mangled"
	p.Epoch = 99
	_, err := e.c.Append(e.ctx, []byte("still fine"))
	require.NoError(t, err)
	assert.True(t, e.c.Projection().Equal(e.cl.Projection))
}

func TestEntryHeaderLimits(t *testing.T) {
	t.Run("largest entry with full backpointers at high addresses", func(t *testing.T) {
		const k = 64
		e := newEnv(t, corfutest.Options{Backpointers: k}, nil)
		// Addresses near the top of the space take the longest varints.
		require.NoError(t, e.cl.Sequencer.Bootstrap(0, storage.MaxAddress/2, nil))
		streams := make([]corfu.StreamID, sequencer.MaxStreams)
		for i := range streams {
			streams[i] = corfu.StreamID(^uint64(i)) // the longest varints too
		}
		for range k {
			_, err := e.c.Append(e.ctx, []byte{}, streams...)
			require.NoError(t, err)
		}
		big := bytes.Repeat([]byte{0x5a}, corfu.DefaultMaxEntryBytes)
		a, err := e.c.Append(e.ctx, big, streams...)
		require.NoError(t, err, "an entry within MaxEntryBytes always fits, whatever its header")
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		assert.Equal(t, big, got.Data)
		require.Len(t, got.Backpointers, len(streams))
		for i := range streams {
			assert.Len(t, got.Backpointers[i], k)
		}
	})

	t.Run("sequencer keeps more backpointers than an entry holds", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Backpointers: 100}, func(c *corfu.Config) { c.Backpointers = 64 })
		const n = 80
		for i := range n {
			_, err := e.c.Append(e.ctx, fmt.Appendf(nil, "%d", i), 1)
			require.NoError(t, err)
		}
		got, err := e.c.Read(e.ctx, n-1)
		require.NoError(t, err, "the entry decodes")
		assert.Len(t, got.Backpointers[0], 64, "the newest 64 are kept")
		assert.Equal(t, storage.Address(n-2), got.Backpointers[0][0])
		es, err := e.c.Stream(1, 0).Sync(e.ctx)
		require.NoError(t, err)
		assert.Len(t, es, n)
	})
}
