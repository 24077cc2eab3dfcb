package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/corfulog/corfu/storage"
)

// Limits of a Board.
const (
	// MaxReporters is how many reporters a Board keeps a report of.
	MaxReporters = 64
	// MaxReport is the size limit of one report, its reporter's name
	// included.
	MaxReport = 4096
)

// Board is a layout server's notice board (OpReport): each reporter (a
// failure detector) posts its newest report there and reads everyone's.
// The board does not look inside a report past its reporter's name: what a
// report says is up to its writers (see corfu.DetectorConfig.Confirm).
//
// Reports are advisory: a Board keeps them in memory only, and a restarted
// layout server starts with an empty one. The zero Board is ready to use
// and safe for concurrent use.
type Board struct {
	mu      sync.Mutex
	reports map[string][]byte // by reporter
}

// Post stores report (EncodeReport's form), replacing its reporter's
// previous one, and returns every report the board holds, its own
// included, in the order of their reporters' names (DecodeReports reads
// them). It fails with ErrMalformed for a report that does not decode,
// and with storage.ErrTooLarge for one past MaxReport or a new reporter
// past MaxReporters; the board is then unchanged.
func (b *Board) Post(report []byte) ([]byte, error) {
	if len(report) > MaxReport {
		return nil, fmt.Errorf("%w: report of %d bytes, limit %d", storage.ErrTooLarge, len(report), MaxReport)
	}
	who, _, err := splitReport(report)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reports == nil {
		b.reports = map[string][]byte{}
	}
	if _, ok := b.reports[who]; !ok && len(b.reports) >= MaxReporters {
		return nil, fmt.Errorf("%w: %d reporters on the board already", storage.ErrTooLarge, MaxReporters)
	}
	b.reports[who] = slices.Clone(report)
	names := make([]string, 0, len(b.reports))
	for n := range b.reports {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []byte
	for _, n := range names {
		out = binary.AppendUvarint(out, uint64(len(b.reports[n])))
		out = append(out, b.reports[n]...)
	}
	return out, nil
}

// EncodeReport returns the report reporter posts with body.
func EncodeReport(reporter string, body []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(reporter)))
	out = append(out, reporter...)
	return append(out, body...)
}

// splitReport returns a report's reporter and body.
func splitReport(report []byte) (string, []byte, error) {
	n, k := binary.Uvarint(report)
	if k <= 0 || n == 0 || n > uint64(len(report)-k) {
		return "", nil, fmt.Errorf("%w: report without a reporter's name", ErrMalformed)
	}
	return string(report[k : k+int(n)]), report[k+int(n):], nil
}

// Report is one reporter's report on a Board.
type Report struct {
	Reporter string
	Body     []byte
}

// DecodeReports reads what Board.Post returns. It fails with ErrMalformed
// on anything else.
func DecodeReports(data []byte) ([]Report, error) {
	var out []Report
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, fmt.Errorf("%w: truncated report list", ErrMalformed)
		}
		who, body, err := splitReport(data[k : k+int(n)])
		if err != nil {
			return nil, err
		}
		out = append(out, Report{Reporter: who, Body: slices.Clone(body)})
		data = data[k+int(n):]
	}
	return out, nil
}

// Report posts report (EncodeReport's form) to the layout server's board
// and returns every report the board holds.
func (c LayoutClient) Report(ctx context.Context, report []byte) ([]Report, error) {
	resp, err := call(ctx, c.Caller, c.Node, &Request{Op: OpReport, Data: report})
	if err != nil {
		return nil, err
	}
	return DecodeReports(resp.Data)
}
