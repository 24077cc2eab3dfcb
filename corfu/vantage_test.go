package corfu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport"
)

func TestSuspicionRoundTrips(t *testing.T) {
	for _, s := range [][]projection.NodeID{nil, {"unit0"}, {"unit0", "seq", "spare1"}} {
		inc, round, got, err := decodeSuspicion(encodeSuspicion(3, 7, s))
		require.NoError(t, err)
		assert.Equal(t, uint64(3), inc)
		assert.Equal(t, uint64(7), round)
		assert.Equal(t, s, got)
	}
}

func TestSuspicionRejectsBadBodies(t *testing.T) {
	good := encodeSuspicion(1, 3, []projection.NodeID{"unit0"})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"no count":   {3},
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"empty name": {1, 3, 1, 0},
		"huge count": {1, 3, 0xff, 0xff, 0x03},
	} {
		_, _, _, err := decodeSuspicion(b)
		assert.ErrorIs(t, err, errBadSuspicion, name)
	}
}

// FuzzDecodeSuspicion checks that decodeSuspicion never panics, fails only
// with errBadSuspicion, and that what it decodes round-trips.
func FuzzDecodeSuspicion(f *testing.F) {
	f.Add(encodeSuspicion(5, 1, nil))
	f.Add(encodeSuspicion(5, 9, []projection.NodeID{"unit0", "seq"}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		inc, round, s, err := decodeSuspicion(b)
		if err != nil {
			require.ErrorIs(t, err, errBadSuspicion)
			return
		}
		inc2, round2, s2, err := decodeSuspicion(encodeSuspicion(inc, round, s))
		require.NoError(t, err)
		require.Equal(t, inc, inc2)
		require.Equal(t, round, round2)
		require.Equal(t, s, s2)
	})
}

// TestPeerFreshOnlyWhenItsRoundGoesUp: a peer that stopped posting, whose
// last reports differ between two boards (one missed its last posts) that
// are reached in turn, stops counting after Misses rounds; a restarted
// peer (a new incarnation, rounds from one) counts at its first post.
func TestPeerFreshOnlyWhenItsRoundGoesUp(t *testing.T) {
	d := &Detector{cfg: DetectorConfig{Misses: 3, Confirm: 2}, name: "a", misses: map[projection.NodeID]int{"unit0": 3}}
	board := func(inc, round uint64, suspects ...projection.NodeID) []transport.Report {
		return []transport.Report{{Reporter: "b", Body: encodeSuspicion(inc, round, suspects)}}
	}
	for r := uint64(1); r <= 10; r++ {
		d.round++
		d.ingest([][]transport.Report{board(1, r)})
	}
	require.False(t, d.confirmed("unit0"), "b reports and does not suspect unit0")
	for i := range 20 {
		d.round++
		if i%2 == 0 {
			d.ingest([][]transport.Report{board(1, 10)})
		} else {
			d.ingest([][]transport.Report{board(1, 7)})
		}
	}
	require.True(t, d.confirmed("unit0"), "b went quiet: boards that disagree do not make it look alive")
	d.round++
	d.ingest([][]transport.Report{board(2, 1), board(1, 10)})
	require.False(t, d.confirmed("unit0"), "b restarted: its new incarnation counts at once")
}
