package corfu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
)

func TestSuspicionRoundTrips(t *testing.T) {
	for _, s := range [][]projection.NodeID{nil, {"unit0"}, {"unit0", "seq", "spare1"}} {
		round, got, err := decodeSuspicion(encodeSuspicion(7, s))
		require.NoError(t, err)
		assert.Equal(t, uint64(7), round)
		assert.Equal(t, s, got)
	}
}

func TestSuspicionRejectsBadBodies(t *testing.T) {
	good := encodeSuspicion(3, []projection.NodeID{"unit0"})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"no count":   {3},
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"empty name": {3, 1, 0},
		"huge count": {3, 0xff, 0xff, 0x03},
	} {
		_, _, err := decodeSuspicion(b)
		assert.ErrorIs(t, err, errBadSuspicion, name)
	}
}

// FuzzDecodeSuspicion checks that decodeSuspicion never panics, fails only
// with errBadSuspicion, and that what it decodes round-trips.
func FuzzDecodeSuspicion(f *testing.F) {
	f.Add(encodeSuspicion(1, nil))
	f.Add(encodeSuspicion(9, []projection.NodeID{"unit0", "seq"}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		round, s, err := decodeSuspicion(b)
		if err != nil {
			require.ErrorIs(t, err, errBadSuspicion)
			return
		}
		round2, s2, err := decodeSuspicion(encodeSuspicion(round, s))
		require.NoError(t, err)
		require.Equal(t, round, round2)
		require.Equal(t, s, s2)
	})
}
