package transport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

func TestBoardKeepsEachReportersNewest(t *testing.T) {
	var b transport.Board
	got, err := b.Post(transport.EncodeReport("d2", []byte("first")))
	require.NoError(t, err)
	reports, err := transport.DecodeReports(got)
	require.NoError(t, err)
	assert.Equal(t, []transport.Report{{Reporter: "d2", Body: []byte("first")}}, reports)

	_, err = b.Post(transport.EncodeReport("d1", []byte("a")))
	require.NoError(t, err)
	got, err = b.Post(transport.EncodeReport("d2", []byte("second")))
	require.NoError(t, err)
	reports, err = transport.DecodeReports(got)
	require.NoError(t, err)
	assert.Equal(t, []transport.Report{
		{Reporter: "d1", Body: []byte("a")},
		{Reporter: "d2", Body: []byte("second")},
	}, reports, "each reporter's newest, in the reporters' order")
}

func TestBoardRejectsBadReports(t *testing.T) {
	var b transport.Board
	_, err := b.Post(nil)
	require.ErrorIs(t, err, transport.ErrMalformed)
	_, err = b.Post([]byte{5, 'a'}) // a name longer than the report
	require.ErrorIs(t, err, transport.ErrMalformed)
	_, err = b.Post(transport.EncodeReport("", []byte("x")))
	require.ErrorIs(t, err, transport.ErrMalformed, "a report needs a reporter")
	_, err = b.Post(transport.EncodeReport("big", make([]byte, transport.MaxReport)))
	require.ErrorIs(t, err, storage.ErrTooLarge)
	for i := range transport.MaxReporters {
		_, err = b.Post(transport.EncodeReport(fmt.Sprintf("d%02d", i), nil))
		require.NoError(t, err)
	}
	_, err = b.Post(transport.EncodeReport("one too many", nil))
	require.ErrorIs(t, err, storage.ErrTooLarge)
	got, err := b.Post(transport.EncodeReport("d00", []byte("again")))
	require.NoError(t, err, "a known reporter still posts on a full board")
	reports, err := transport.DecodeReports(got)
	require.NoError(t, err)
	require.Len(t, reports, transport.MaxReporters)
	for _, r := range reports {
		assert.False(t, strings.Contains(r.Reporter, "many"), "a refused report left no trace")
	}
}

func TestReportServedByLayoutServersOnly(t *testing.T) {
	unit := &transport.Server{Unit: storage.NewMemory()}
	resp := unit.Handle(&transport.Request{Op: transport.OpReport, Data: transport.EncodeReport("d", nil)})
	require.ErrorIs(t, resp.Err, transport.ErrWrongRole)

	layout := &transport.Server{Layout: projection.NewAcceptor(&projection.Projection{})}
	resp = layout.Handle(&transport.Request{Op: transport.OpReport, Data: transport.EncodeReport("d", []byte("x"))})
	require.NoError(t, resp.Err)
	reports, err := transport.DecodeReports(resp.Data)
	require.NoError(t, err)
	assert.Equal(t, []transport.Report{{Reporter: "d", Body: []byte("x")}}, reports)
	resp = layout.Handle(&transport.Request{Op: transport.OpReport, Data: []byte{9}})
	require.ErrorIs(t, resp.Err, transport.ErrMalformed, "a bad report changes nothing")
	assert.Equal(t, "report", transport.OpReport.String())
}

// FuzzDecodeReports checks that DecodeReports never panics, fails only with
// ErrMalformed, and that a board given the reports it decodes gives them
// back.
func FuzzDecodeReports(f *testing.F) {
	var b transport.Board
	one, _ := b.Post(transport.EncodeReport("d1", []byte{1, 2, 3}))
	two, _ := b.Post(transport.EncodeReport("d2", nil))
	f.Add(one)
	f.Add(two)
	f.Add([]byte{})
	f.Add([]byte{3, 1, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		reports, err := transport.DecodeReports(data)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			return
		}
		var b transport.Board
		for _, r := range reports {
			_, err := b.Post(transport.EncodeReport(r.Reporter, r.Body))
			if err != nil {
				require.ErrorIs(t, err, storage.ErrTooLarge)
				return
			}
		}
	})
}
