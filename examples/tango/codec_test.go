package tango_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/examples/tango"
)

type inner struct {
	B []byte
	P *int
}

type record struct {
	I   int
	I8  int8
	U   uint64
	F   float64
	F32 float32
	S   string
	OK  bool
	L   []string
	A   [2]int16
	M   map[string]int
	In  inner
	T   time.Time
	N   *inner
	u   int // unexported: not encoded
}

func roundTrip[T any](t *testing.T, c tango.Codec[T], v T) T {
	t.Helper()
	b, err := c.Encode(v)
	require.NoError(t, err)
	got, err := c.Decode(b)
	require.NoError(t, err)
	return got
}

func TestBinaryRoundTrip(t *testing.T) {
	seven := 7
	v := record{
		I: -5, I8: -128, U: 1 << 63, F: 3.25, F32: -1.5, S: "héllo", OK: true,
		L: []string{"a", "", "c"}, A: [2]int16{-1, 2}, M: map[string]int{"z": 1, "a": -2},
		In: inner{B: []byte{0, 1}, P: &seven}, T: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), u: 9,
	}
	got := roundTrip(t, tango.Binary[record](), v)
	v.u = 0
	assert.Equal(t, v, got)
	assert.Equal(t, v, roundTrip(t, tango.JSON[record](), v))
}

func TestBinaryTopLevelBytes(t *testing.T) {
	b, err := tango.Binary[string]().Encode("alice")
	require.NoError(t, err)
	assert.Equal(t, []byte("alice"), b, "a top-level string is its bytes")
	assert.Equal(t, []byte{1, 2}, roundTrip(t, tango.Binary[[]byte](), []byte{1, 2}))
}

// TestBinaryDeterministic: equal maps encode to equal bytes, whatever
// their insertion order.
func TestBinaryDeterministic(t *testing.T) {
	c := tango.Binary[map[int]string]()
	a, b := map[int]string{}, map[int]string{}
	for i := range 100 {
		a[i] = "x"
		b[99-i] = "x"
	}
	ea, err := c.Encode(a)
	require.NoError(t, err)
	for range 5 {
		eb, err := c.Encode(b)
		require.NoError(t, err)
		assert.Equal(t, ea, eb)
	}
}

func TestBinaryRejects(t *testing.T) {
	c := tango.Binary[record]()
	b, err := c.Encode(record{S: "abc", L: []string{"x"}})
	require.NoError(t, err)
	for n := range len(b) {
		_, err := c.Decode(b[:n])
		assert.ErrorIs(t, err, tango.ErrCodec, "truncated at %d", n)
	}
	_, err = c.Decode(append(b, 0))
	assert.ErrorIs(t, err, tango.ErrCodec, "trailing byte")
	_, err = tango.Binary[[]int]().Decode([]byte{0xff, 0xff, 0x03})
	assert.ErrorIs(t, err, tango.ErrCodec, "a count beyond the bytes left")
	_, err = tango.Binary[int8]().Decode([]byte{0x80, 0x04})
	assert.ErrorIs(t, err, tango.ErrCodec, "an overflow")
	_, err = tango.Binary[any]().Encode(1)
	assert.ErrorIs(t, err, tango.ErrCodec, "an interface")
	_, err = tango.Binary[struct{ F func() }]().Encode(struct{ F func() }{})
	assert.ErrorIs(t, err, tango.ErrCodec, "a func field")
}

type tree struct {
	V    int
	Kids []tree
}

func TestBinaryRecursive(t *testing.T) {
	v := tree{V: 1, Kids: []tree{{V: 2}, {V: 3, Kids: []tree{{V: 4}}}}}
	assert.Equal(t, v, roundTrip(t, tango.Binary[tree](), v))
}
