package projection_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

func TestValidate(t *testing.T) {
	long := projection.NodeID(strings.Repeat("n", projection.MaxNodeIDBytes+1))
	manyStripes := make([][]projection.NodeID, projection.MaxStripes+1)
	for i := range manyStripes {
		manyStripes[i] = chain(projection.NodeID(rune('A'+i%26)) + projection.NodeID(rune('a'+i/26)))
	}
	manyReplicas := make([]projection.NodeID, projection.MaxReplicas+1)
	manyLayout := make([]projection.NodeID, projection.MaxLayoutServers+1)
	for i := range manyReplicas {
		manyReplicas[i] = projection.NodeID(rune('a' + i))
		manyLayout[i] = projection.NodeID(rune('a' + i))
	}
	manySegments := make([]projection.Segment, projection.MaxSegments+1)
	for i := range manySegments {
		manySegments[i] = seg(storage.Address(i), storage.Address(i+1), storage.Address(i), chain("a"))
	}
	manySegments[len(manySegments)-1].End = 0

	tests := []struct {
		name    string
		p       *projection.Projection
		wantMsg string // empty for a valid projection
	}{
		{name: "valid three segments", p: threeSegments()},
		{name: "valid one open segment", p: proj(0, seg(0, 0, 0, chain("a", "b", "c")))},
		{name: "valid late start", p: proj(0, seg(1000, 0, 0, chain("a")))},
		{name: "valid node reused after an empty stripe", p: proj(0, seg(0, 2, 0, chain("a"), chain("b"), chain("c")), seg(2, 0, 0, chain("c")))},
		{name: "valid gap in local addresses", p: proj(0, seg(0, 4, 0, chain("a")), seg(4, 0, 100, chain("a")))},
		{name: "nil projection", p: nil, wantMsg: "nil projection"},
		{name: "no sequencer", p: func() *projection.Projection { p := threeSegments(); p.Sequencer = ""; return p }(), wantMsg: "no sequencer"},
		{name: "sequencer id too long", p: func() *projection.Projection { p := threeSegments(); p.Sequencer = long; return p }(), wantMsg: "sequencer: node id of 256 bytes"},
		{name: "no layout servers", p: func() *projection.Projection { p := threeSegments(); p.Layout = nil; return p }(), wantMsg: "no layout servers"},
		{name: "too many layout servers", p: func() *projection.Projection { p := threeSegments(); p.Layout = manyLayout; return p }(), wantMsg: "17 layout servers, limit 16"},
		{name: "empty layout server", p: func() *projection.Projection { p := threeSegments(); p.Layout[1] = ""; return p }(), wantMsg: "layout server 1: empty node id"},
		{name: "duplicate layout servers", p: func() *projection.Projection { p := threeSegments(); p.Layout[2] = "l1"; return p }(), wantMsg: `layout server "l1" named twice`},
		{name: "no segments", p: proj(0), wantMsg: "no segments"},
		{name: "too many segments", p: proj(0, manySegments...), wantMsg: "1025 segments, limit 1024"},
		{name: "gap between segments", p: proj(0, seg(0, 10, 0, chain("a")), seg(11, 0, 10, chain("a"))), wantMsg: "a gap between segment 0 ending at 10 and segment 1 starting at 11"},
		{name: "overlap between segments", p: proj(0, seg(0, 10, 0, chain("a")), seg(9, 0, 10, chain("a"))), wantMsg: "an overlap between segment 0 ending at 10 and segment 1 starting at 9"},
		{name: "open segment not last", p: proj(0, seg(0, 0, 0, chain("a")), seg(10, 0, 10, chain("a"))), wantMsg: "segment 0: open (end 0) but not the last segment"},
		{name: "last segment closed", p: proj(0, seg(0, 10, 0, chain("a"))), wantMsg: "segment 0: the last segment must be open, but it ends at 10"},
		{name: "end equals start", p: proj(0, seg(0, 10, 0, chain("a")), seg(10, 10, 10, chain("a")), seg(10, 0, 10, chain("a"))), wantMsg: "segment 1: end 10 not above start 10"},
		{name: "end below start", p: proj(0, seg(10, 5, 0, chain("a")), seg(5, 0, 10, chain("a"))), wantMsg: "segment 0: end 5 not above start 10"},
		{name: "start at max address", p: proj(0, seg(storage.MaxAddress, 0, 0, chain("a"))), wantMsg: "segment 0: start 9223372036854775807 at or above storage.MaxAddress"},
		{name: "end above max address", p: proj(0, seg(0, storage.MaxAddress+1, 0, chain("a")), seg(storage.MaxAddress+1, 0, 0, chain("b"))), wantMsg: "segment 0: end 9223372036854775808 above storage.MaxAddress"},
		{name: "base at max address", p: proj(0, seg(0, 0, storage.MaxAddress, chain("a"))), wantMsg: "segment 0: base 9223372036854775807 at or above storage.MaxAddress"},
		{name: "local addresses pass max address", p: proj(0, seg(0, 10, storage.MaxAddress-5, chain("a")), seg(10, 0, 0, chain("b"))), wantMsg: "segment 0: stripe 0: local addresses from base 9223372036854775802 pass storage.MaxAddress"},
		{name: "no stripes", p: proj(0, seg(0, 0, 0)), wantMsg: "segment 0: no stripes"},
		{name: "too many stripes", p: proj(0, seg(0, 0, 0, manyStripes...)), wantMsg: "segment 0: 257 stripes, limit 256"},
		{name: "empty chain", p: proj(0, seg(0, 0, 0, chain("a"), chain())), wantMsg: "segment 0: stripe 1: empty chain"},
		{name: "too many replicas", p: proj(0, seg(0, 0, 0, manyReplicas)), wantMsg: "segment 0: stripe 0: 17 replicas, limit 16"},
		{name: "empty replica", p: proj(0, seg(0, 0, 0, chain("a", ""))), wantMsg: "segment 0: stripe 0 replica 1: empty node id"},
		{name: "replica id too long", p: proj(0, seg(0, 0, 0, chain(long))), wantMsg: "segment 0: stripe 0 replica 0: node id of 256 bytes"},
		{name: "node twice in a chain", p: proj(0, seg(0, 0, 0, chain("a", "b", "a"))), wantMsg: `segment 0: stripe 0: node "a" twice in the chain`},
		{name: "node in two stripes", p: proj(0, seg(0, 0, 0, chain("a", "b"), chain("c", "a"))), wantMsg: `segment 0: node "a" in stripes 0 and 1`},
		{
			name:    "closed local ranges overlap",
			p:       proj(0, seg(0, 10, 0, chain("a"), chain("b")), seg(10, 16, 4, chain("c"), chain("b")), seg(16, 0, 100, chain("a"))),
			wantMsg: `segment 1: stripe 1: node "b" local addresses start at base 4, below 5 used by an earlier segment`,
		},
		{
			name:    "open segment base below an earlier range",
			p:       proj(0, seg(0, 10, 0, chain("a"), chain("b")), seg(10, 0, 4, chain("a"))),
			wantMsg: `segment 1: stripe 0: node "a" local addresses start at base 4, below 5 used by an earlier segment`,
		},
		{
			name: "local addresses go back",
			// a holds [100, 105) in segment 0; segment 2 would put it at 0,
			// out of global order though the ranges do not overlap.
			p:       proj(0, seg(0, 10, 100, chain("a"), chain("b")), seg(10, 16, 0, chain("c"), chain("d")), seg(16, 0, 0, chain("a"))),
			wantMsg: `segment 2: stripe 0: node "a" local addresses start at base 0, below 105 used by an earlier segment`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, projection.ErrInvalid)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "projection: invalid: "), err.Error())
		})
	}
}

func TestValidateNext(t *testing.T) {
	prev := threeSegments() // epoch 5
	tests := []struct {
		name    string
		prev    *projection.Projection
		next    *projection.Projection
		want    error
		wantMsg string
	}{
		{
			name: "close the open segment and add one",
			next: proj(6, prev.Segments[0], prev.Segments[1], seg(16, 30, 7, chain("d"), chain("a")), seg(30, 0, 0, chain("e"), chain("f"))),
		},
		{
			name: "only the epoch changes",
			next: func() *projection.Projection { p := threeSegments(); p.Epoch = 9; return p }(),
		},
		{
			name: "replace a replica in a closed segment",
			next: proj(6, seg(0, 10, 0, chain("x"), chain("b", "y")), prev.Segments[1], prev.Segments[2]),
		},
		{
			name: "drop a trimmed segment",
			next: proj(6, prev.Segments[1], prev.Segments[2]),
		},
		{
			name: "drop an aligned part of a segment",
			next: proj(6, seg(13, 16, 6, chain("a"), chain("b"), chain("c")), prev.Segments[2]),
		},
		{
			name: "split a closed segment",
			next: proj(6, seg(0, 4, 0, chain("a"), chain("b")), seg(4, 10, 2, chain("a"), chain("b")), prev.Segments[1], prev.Segments[2]),
		},
		{
			name: "reshape the open segment",
			next: proj(6, prev.Segments[0], prev.Segments[1], seg(16, 0, 9, chain("z"))),
		},
		{
			name: "same epoch",
			next: func() *projection.Projection { p := threeSegments(); p.Epoch = 5; return p }(),
			want: projection.ErrStaleEpoch,
		},
		{
			name: "older epoch",
			next: func() *projection.Projection { p := threeSegments(); p.Epoch = 4; return p }(),
			want: projection.ErrStaleEpoch,
		},
		{
			name: "invalid next", next: proj(6), want: projection.ErrInvalid, wantMsg: "no segments",
		},
		{
			name: "nil prev", prev: nil, next: threeSegments(), want: projection.ErrInvalid, wantMsg: "no previous projection",
		},
		{
			name:    "moved base",
			next:    proj(6, seg(0, 10, 1, chain("x"), chain("y")), prev.Segments[1], prev.Segments[2]),
			want:    projection.ErrInvalid,
			wantMsg: "prev segment 0 [0, 10) at address 0: next segment 0 maps them elsewhere",
		},
		{
			name:    "changed stripe count",
			next:    proj(6, seg(0, 10, 0, chain("a")), seg(10, 16, 10, chain("a"), chain("b"), chain("c")), seg(16, 0, 12, chain("d"), chain("a"))),
			want:    projection.ErrInvalid,
			wantMsg: "prev segment 0 [0, 10) at address 0: next segment 0 has 1 stripes, prev 2",
		},
		{
			name:    "reopened closed segment",
			next:    proj(6, prev.Segments[0], seg(10, 0, 5, chain("a"), chain("b"), chain("c"))),
			want:    projection.ErrInvalid,
			wantMsg: "prev segment 1 [10, 16) at address 10: next segment 1 is open where prev is closed",
		},
		{
			name:    "misaligned drop",
			next:    proj(6, seg(12, 16, 5, chain("a"), chain("b"), chain("c")), prev.Segments[2]),
			want:    projection.ErrInvalid,
			wantMsg: "prev segment 1 [10, 16) at address 12: next segment 0 maps them elsewhere",
		},
		{
			name:    "misaligned split",
			next:    proj(6, seg(0, 5, 0, chain("a"), chain("b")), seg(5, 10, 3, chain("x"), chain("y")), prev.Segments[1], prev.Segments[2]),
			want:    projection.ErrInvalid,
			wantMsg: "prev segment 0 [0, 10) at address 5: next segment 1 maps them elsewhere",
		},
		{
			name:    "dropped prefix comes back",
			prev:    proj(5, prev.Segments[1], prev.Segments[2]),
			next:    proj(6, prev.Segments[0], prev.Segments[1], prev.Segments[2]),
			want:    projection.ErrInvalid,
			wantMsg: "next starts at 0, below prev's first address 10",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prev
			if tt.prev != nil || strings.HasPrefix(tt.name, "nil") {
				p = tt.prev
			}
			err := projection.ValidateNext(p, tt.next)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

// TestValidateNextComposes checks on a chain of reconfigurations that each
// step keeps the committed prefix of every earlier one, not just the last.
func TestValidateNextComposes(t *testing.T) {
	steps := []*projection.Projection{
		proj(1, seg(0, 0, 0, chain("a"), chain("b"))),
		proj(2, seg(0, 10, 0, chain("a"), chain("b")), seg(10, 0, 0, chain("c"))),
		proj(3, seg(4, 10, 2, chain("a"), chain("x")), seg(10, 20, 0, chain("c")), seg(20, 0, 5, chain("a"), chain("b"))),
		proj(4, seg(12, 20, 2, chain("c", "y")), seg(20, 30, 5, chain("a"), chain("b")), seg(30, 0, 0, chain("d"))),
	}
	for i := range steps {
		require.NoError(t, steps[i].Validate(), "step %d", i)
		for j := range i {
			assert.NoError(t, projection.ValidateNext(steps[j], steps[i]), "step %d after %d", i, j)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    *projection.Projection
	}{
		{name: "three segments", p: threeSegments()},
		{name: "one open segment", p: proj(7, seg(0, 0, 0, chain("a", "b", "c")))},
		{name: "large addresses", p: proj(1<<62, seg(storage.MaxAddress-10, 0, storage.MaxAddress-1, chain("a")))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.p)
			require.NoError(t, err)
			got, err := projection.Parse(b)
			require.NoError(t, err)
			assert.True(t, tt.p.Equal(got))
			assert.Equal(t, tt.p, got)
		})
	}
}

func TestJSONForm(t *testing.T) {
	p := proj(3, seg(0, 4, 0, chain("a")), seg(4, 0, 4, chain("a", "b")))
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"epoch": 3,
		"sequencer": "seq",
		"layout": ["l1", "l2", "l3"],
		"segments": [
			{"start": 0, "end": 4, "base": 0, "stripes": [["a"]]},
			{"start": 4, "base": 4, "stripes": [["a", "b"]]}
		]
	}`, string(b))
}

func TestParseErrors(t *testing.T) {
	valid := `{"epoch":1,"sequencer":"s","layout":["l"],"segments":[{"start":0,"base":0,"stripes":[["a"]]}]}`
	_, err := projection.Parse([]byte(valid))
	require.NoError(t, err)
	tests := []struct {
		name    string
		in      string
		wantMsg string
	}{
		{name: "empty", in: "", wantMsg: "decode"},
		{name: "not json", in: "epoch 1", wantMsg: "decode"},
		{name: "truncated", in: valid[:len(valid)-1], wantMsg: "decode"},
		{name: "null", in: "null", wantMsg: "no sequencer"},
		{name: "unknown field", in: `{"epoch":1,"color":"blue"}`, wantMsg: `unknown field "color"`},
		{name: "unknown segment field", in: strings.Replace(valid, `"base":0`, `"base":0,"size":3`, 1), wantMsg: `unknown field "size"`},
		{name: "wrong type", in: `{"epoch":"one"}`, wantMsg: "decode"},
		{name: "negative address", in: strings.Replace(valid, `"start":0`, `"start":-1`, 1), wantMsg: "decode"},
		{name: "trailing data", in: valid + ` {}`, wantMsg: "trailing data"},
		{name: "trailing garbage", in: valid + `]`, wantMsg: "trailing data"},
		{name: "invalid projection", in: strings.Replace(valid, `[["a"]]`, `[]`, 1), wantMsg: "segment 0: no stripes"},
		{name: "too large", in: valid + strings.Repeat(" ", projection.MaxJSONBytes), wantMsg: "limit 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := projection.Parse([]byte(tt.in))
			require.ErrorIs(t, err, projection.ErrInvalid)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
	// Trailing white space is fine.
	_, err = projection.Parse([]byte(valid + "\n\t "))
	assert.NoError(t, err)
}

// TestBackpointersNeverChange: K is part of the projection, within bounds,
// and the same in every epoch.
func TestBackpointersNeverChange(t *testing.T) {
	prev := proj(1, seg(0, 0, 0, chain("a", "b")))
	prev.Backpointers = 4
	next := prev.Clone()
	next.Epoch = 2
	require.NoError(t, projection.ValidateNext(prev, next))
	next.Backpointers = 5
	require.ErrorIs(t, projection.ValidateNext(prev, next), projection.ErrInvalid)
	next.Backpointers = projection.MaxBackpointers + 1
	require.ErrorIs(t, next.Validate(), projection.ErrInvalid)
	next.Backpointers = -1
	require.ErrorIs(t, next.Validate(), projection.ErrInvalid)
	require.True(t, prev.Equal(prev.Clone()))
	other := prev.Clone()
	other.Backpointers = 3
	require.False(t, prev.Equal(other))
}
