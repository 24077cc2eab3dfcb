package sim_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

// traced runs a seed's Swarm options, changed by each of change, and
// returns the result and its trace.
func traced(t *testing.T, seed uint64, change ...func(*sim.Options)) (sim.Options, sim.Result, []sim.Event) {
	t.Helper()
	o := sim.Swarm(seed)
	for _, c := range change {
		c(&o)
	}
	var events []sim.Event
	o.Trace = func(e sim.Event) { events = append(events, e) }
	res := sim.Run(o)
	require.NoError(t, res.Err)
	require.NotEmpty(t, events)
	return o, res, events
}

// timelinePage renders a page and checks that it is self-contained and that
// its drawing is well-formed XML.
func timelinePage(t *testing.T, res sim.Result, events []sim.Event, o sim.TimelineOptions) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, sim.WriteTimeline(&b, res, events, o))
	page := b.String()
	require.True(t, strings.HasPrefix(page, "<!DOCTYPE html>"), "page starts with a doctype")
	require.True(t, strings.HasSuffix(page, "</html>\n"), "page ends with </html>")
	for _, external := range []string{"<link", " src=", "@import", "url(", "https://"} {
		assert.NotContains(t, page, external, "the page must not load anything")
	}
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	require.True(t, start >= 0 && end > start, "page has a drawing")
	d := xml.NewDecoder(strings.NewReader(page[start : end+len("</svg>")]))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the drawing is well-formed")
	}
	return page
}

// noFaults turns a run's faults off.
func noFaults(o *sim.Options) { o.Faults = sim.FaultConfig{} }

func TestWriteTimeline(t *testing.T) {
	o, res, events := traced(t, 7, noFaults)
	page := timelinePage(t, res, events, sim.TimelineOptions{Title: "seed 7", Run: &o})

	for _, node := range []string{"client1", "layout0", "seq", "unit0"} {
		assert.Contains(t, page, `title="`+node+`"`, "a row for %s", node)
	}
	assert.Contains(t, page, "client1 · appender1", "client rows name their task")
	assert.Contains(t, page, "<h1>seed 7</h1>")
	assert.Contains(t, page, "PASS")
	assert.Contains(t, page, fmt.Sprintf("%016x", res.TraceHash))
	assert.NotContains(t, page, "Truncated")

	// Every operation of the history is drawn, with its description.
	assert.Equal(t, len(res.History.Ops), strings.Count(page, `<rect class="op"`))
	for _, op := range res.History.Ops[:5] {
		assert.Contains(t, page, html.EscapeString(strings.TrimSpace(op.String())))
	}

	// With a constant latency and no faults, every message's sending time
	// is reconstructed exactly: each was in flight for the latency.
	msgs := strings.Count(page, `<line class="m `)
	assert.Equal(t, countKinds(events, sim.KindDeliver, sim.KindReply), msgs)
	assert.Equal(t, msgs, strings.Count(page, fmt.Sprintf("(%v in flight)", o.Latency)),
		"every message took the constant latency")

	var again bytes.Buffer
	require.NoError(t, sim.WriteTimeline(&again, res, events, sim.TimelineOptions{Title: "seed 7", Run: &o}))
	assert.Equal(t, page, again.String(), "the page is deterministic")
}

func countKinds(events []sim.Event, kinds ...sim.Kind) int {
	n := 0
	for _, e := range events {
		for _, k := range kinds {
			if e.Kind == k {
				n++
			}
		}
	}
	return n
}

var drawnRE = regexp.MustCompile(`<rect class="op"|<line class="m |<line class="mk `)

func TestWriteTimelineTruncates(t *testing.T) {
	_, res, events := traced(t, 1, noFaults)
	page := timelinePage(t, res, events, sim.TimelineOptions{MaxItems: 100})
	assert.Contains(t, page, "Truncated")
	drawn := len(drawnRE.FindAllString(page, -1))
	assert.LessOrEqual(t, drawn, 100)
	assert.Greater(t, drawn, 50)
}

func TestWriteTimelineWindow(t *testing.T) {
	_, res, events := traced(t, 1, noFaults)
	full := timelinePage(t, res, events, sim.TimelineOptions{})
	part := timelinePage(t, res, events, sim.TimelineOptions{From: 100 * time.Millisecond, Until: 120 * time.Millisecond})
	assert.Contains(t, part, "virtual time 100ms to 120ms")
	n, m := len(drawnRE.FindAllString(full, -1)), len(drawnRE.FindAllString(part, -1))
	assert.Positive(t, m)
	assert.Less(t, m, n/4, "a window of 20ms draws a fraction of the run")
}

func TestWriteTimelineFaults(t *testing.T) {
	_, res, events := traced(t, 7, noFaults)
	page := timelinePage(t, res, events, sim.TimelineOptions{Faults: []sim.FaultSpan{
		{Kind: "partition.sym", Nodes: []string{"unit0", "seq"}, Start: 10 * time.Millisecond, End: 50 * time.Millisecond, Detail: "unit0 and seq cut off"},
		{Kind: "lat.bimodal", Start: 5 * time.Millisecond},
	}})
	assert.Equal(t, 2, strings.Count(page, `<rect class="fault"`), "one span per row")
	assert.Equal(t, 1, strings.Count(page, `<rect class="fault all"`), "one span across all rows")
	assert.Contains(t, page, "partition.sym on unit0, seq, 10ms to 50ms: unit0 and seq cut off")
	assert.Contains(t, page, "lat.bimodal on everywhere, 5ms to the end")
}

func TestWriteTimelineFailure(t *testing.T) {
	_, res, events := traced(t, 7)
	res.Err = errors.New("sim: invariant violated: S3 <made up>")
	res.Violations = append(res.Violations, sim.Violation{Invariant: "S3", Addr: 4, Detail: "read of an acked append returned unwritten"})
	page := timelinePage(t, res, events, sim.TimelineOptions{})
	assert.Contains(t, page, "FAIL")
	assert.Contains(t, page, "S3 &lt;made up&gt;", "text is escaped")
	assert.Contains(t, page, "S3 violation at address 4: read of an acked append returned unwritten")
}

// errWriter fails after n bytes.
type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteTimelineWriteError(t *testing.T) {
	_, res, events := traced(t, 7)
	err := sim.WriteTimeline(&errWriter{n: 5000}, res, events, sim.TimelineOptions{})
	assert.EqualError(t, err, "disk full")
}

// TestWriteTimelineRecordedFaults draws a run with faults: the spans come
// from Result.Faults, on the rows of the nodes they hit, and the heal is
// marked.
func TestWriteTimelineRecordedFaults(t *testing.T) {
	o, res, events := traced(t, 5)
	require.NotEmpty(t, res.Faults, "seed 5 injects faults")
	require.Positive(t, res.Heal)
	page := timelinePage(t, res, events, sim.TimelineOptions{Run: &o})

	assert.Contains(t, page, `<line class="heal"`)
	assert.Contains(t, page, fmt.Sprintf("0s to %v, then healed", res.Heal))
	assert.GreaterOrEqual(t, strings.Count(page, `<rect class="fault`), len(res.Faults))
	for _, f := range res.Faults {
		assert.Contains(t, page, html.EscapeString(string(f.Kind)+" on "))
		if f.Kind == sim.FaultCrash {
			assert.Contains(t, page, `title="`+f.Target+`"`, "a crashed node has a row")
		}
	}
	assert.NotContains(t, page, `title="replace"`, "words of a description are not nodes")
	assert.NotContains(t, page, "fault crash ", "fault events are drawn as spans, not marks")

	// Every message is drawn from its sending to its arrival, forwards.
	for _, m := range regexp.MustCompile(`in flight\)`).FindAllStringIndex(page, -1) {
		assert.NotEqual(t, '-', page[strings.LastIndex(page[:m[0]], "(")+1], "negative time in flight")
	}
}
