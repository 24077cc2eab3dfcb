package sim_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/internal/mutant"
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
	// NB: one detector, and one append at a time: a second detector's
	// reports, or bursts of appends, would take the page past the 8000
	// items it draws.
	o, res, events := traced(t, 7, noFaults, func(o *sim.Options) { o.Workload.Vantages, o.Workload.Bursts = 1, 0 })
	page := timelinePage(t, res, events, sim.TimelineOptions{Title: "seed 7", Run: &o, MaxItems: 8000})

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
	// NB: including the answers of reads the units parked (Follow's),
	// sent by the event that woke them.
	assert.Positive(t, strings.Count(page, "read-wait, "), "the run follows past the tail")
	assert.Positive(t, strings.Count(page, "answered after "), "and the units park its reads")

	var again bytes.Buffer
	require.NoError(t, sim.WriteTimeline(&again, res, events, sim.TimelineOptions{Title: "seed 7", Run: &o, MaxItems: 8000}))
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

	// Each span is labelled with its kind, on each row it shades, and the
	// label's tooltip describes the fault.
	assert.Equal(t, 2, strings.Count(page, `<rect class="fault" data-kind="partition.sym"`), "two rects carry the kind")
	assert.Equal(t, 2, strings.Count(page, `title="partition.sym on unit0, seq, 10ms to 50ms: unit0 and seq cut off">partition.sym</span>`),
		"one label per row, with the description as its tooltip")
	assert.Equal(t, 1, strings.Count(page, `>lat.bimodal · all</span>`), "one label for a fault of the whole network")
}

// windowRE reads the window a page draws.
var windowRE = regexp.MustCompile(`virtual time (\S+) to (\S+)</span>`)

func pageWindow(t *testing.T, page string) (time.Duration, time.Duration) {
	t.Helper()
	m := windowRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the page says which window it draws")
	from, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	until, err := time.ParseDuration(m[2])
	require.NoError(t, err)
	return from, until
}

// opRect returns the drawing of op in page, or "".
func opRect(page string, op sim.Op) string {
	desc := html.EscapeString(strings.TrimSpace(op.String()))
	i := strings.Index(page, desc+" (took ")
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(page[:i], "<rect ")
	return page[start : i+strings.Index(page[i:], "</rect>")]
}

// TestWriteTimelineOpensOnViolation makes up a violation naming a late
// operation of a passing run: the page opens on a window around it, not on
// the start of the run, and outlines it.
func TestWriteTimelineOpensOnViolation(t *testing.T) {
	_, res, events := traced(t, 1, noFaults)
	ops := res.History.Ops
	var op, ack sim.Op
	for i := len(ops) * 3 / 4; i < len(ops); i++ {
		if ops[i].Kind == sim.OpRead && ops[i].Outcome == sim.OK {
			op = ops[i]
			break
		}
	}
	require.NotZero(t, op.Invoke, "the run has a late read")
	for _, a := range ops {
		if a.Kind == sim.OpAppend && a.Outcome == sim.OK && a.Addr == op.Addr {
			ack = a
		}
	}
	require.Equal(t, sim.OpAppend, ack.Kind, "the read's address was appended")
	opts := sim.TimelineOptions{MaxItems: 200}
	require.Empty(t, opRect(timelinePage(t, res, events, opts), op), "without a violation, the first 200 items do not reach the read")

	res.Err = errors.New("sim: invariant violated: S3 (made up)")
	res.Violations = append(res.Violations,
		sim.Violation{Invariant: "S2", Addr: 1, Detail: "a warning comes first but is skipped", Warning: true},
		sim.Violation{Invariant: "S3", Addr: op.Addr, Detail: "read of an acked append returned another value: " +
			strings.TrimSpace(op.String()) + " after " + strings.TrimSpace(ack.String())})
	page := timelinePage(t, res, events, opts)
	from, until := pageWindow(t, page)
	assert.LessOrEqual(t, from, op.Invoke, "the window opens before the violating read")
	assert.GreaterOrEqual(t, until, op.Return, "and closes after it")
	assert.Positive(t, from, "not the start of the run")
	rect := opRect(page, op)
	require.NotEmpty(t, rect, "the violating read is drawn")
	assert.Contains(t, rect, `class="op viol"`, "and outlined")
	assert.Contains(t, rect, "involved in the S3 violation")
	assert.Contains(t, page, `<line class="violmark"`)
	assert.Contains(t, page, "This page opens on the first violation, S3 at address")
	assert.Contains(t, page, fmt.Sprintf("(#%d, #%d)", op.ID, ack.ID))
	if r := opRect(page, ack); r != "" {
		assert.Contains(t, r, `class="op viol"`, "the append it names is outlined too")
	}
	assert.LessOrEqual(t, len(drawnRE.FindAllString(page, -1)), 200+2, "MaxItems still holds, but for the named operations")
	assert.Equal(t, strings.Count(page, `class="op viol"`), 2-btoi(opRect(page, ack) == ""), "only the named operations are outlined")

	// An explicit window wins.
	opts.From, opts.Until = 10*time.Millisecond, 30*time.Millisecond
	page = timelinePage(t, res, events, opts)
	from, until = pageWindow(t, page)
	assert.Equal(t, 10*time.Millisecond, from)
	assert.Equal(t, 30*time.Millisecond, until)
	assert.NotContains(t, page, "opens on the first violation")
	assert.NotContains(t, page, `class="violmark"`)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWriteTimelineViolationAddress: a violation that names no operation
// but an address (as the online checks report) opens on the operations on
// that address.
func TestWriteTimelineViolationAddress(t *testing.T) {
	_, res, events := traced(t, 1, noFaults)
	var onAddr []sim.Op
	addr := res.History.Ops[len(res.History.Ops)/2].Addr
	for _, op := range res.History.Ops {
		if op.Addr == addr && (op.Kind == sim.OpRead || op.Kind == sim.OpFill || op.Kind == sim.OpAppend && op.Outcome == sim.OK) {
			onAddr = append(onAddr, op)
		}
	}
	require.NotEmpty(t, onAddr)
	res.Err = errors.New("sim: invariant violated: S10 (made up)")
	res.Violations = append(res.Violations, sim.Violation{Invariant: "S10", Addr: addr,
		Detail: fmt.Sprintf("addresses [%d, %d) handed out in epoch 1 were already handed out in epoch 0", addr, addr+1)})
	page := timelinePage(t, res, events, sim.TimelineOptions{})
	assert.Contains(t, page, fmt.Sprintf("the operations on address %d", addr))
	assert.Equal(t, len(onAddr), strings.Count(page, `class="op viol"`), "every operation on the address is outlined")
	for _, op := range onAddr {
		assert.Contains(t, opRect(page, op), `class="op viol"`, "%v", op)
	}
}

// TestWriteTimelineMutantFailure draws a genuinely failing run, a unit
// that acknowledges appends before the last replica has them: the page
// opens on the append the first violation names, and outlines it.
func TestWriteTimelineMutantFailure(t *testing.T) {
	opRef := regexp.MustCompile(`#(\d+) c\d+ append`)
	// lateAppend returns the first violation of res and the append it
	// names, if that append was invoked after 1s of virtual time: a
	// violation the run's first items do not show.
	lateAppend := func(res sim.Result) (sim.Violation, sim.Op, bool) {
		if res.Err == nil {
			return sim.Violation{}, sim.Op{}, false
		}
		var first sim.Violation
		for _, v := range res.Violations {
			if !v.Warning {
				first = v
				break
			}
		}
		m := opRef.FindStringSubmatch(first.Detail)
		if m == nil {
			return first, sim.Op{}, false
		}
		id, err := strconv.Atoi(m[1])
		if err != nil || id >= len(res.History.Ops) {
			return first, sim.Op{}, false
		}
		op := res.History.Ops[id]
		return first, op, op.Invoke >= time.Second
	}
	var opts []sim.Options
	for seed := uint64(1); seed <= 200; seed++ {
		o := sim.Swarm(seed)
		o.Mutants = mutant.Set{AckBeforeLast: true}
		// NB: head crashes through a longer fault phase leave acked
		// entries on heads alone later in the run: 9 of seeds 1..400 name
		// an append invoked after 1s (the first is seed 8), against 5
		// (the first 198) with the seed's own draws.
		o.Faults.Crashes = max(o.Faults.Crashes, 3)
		o.Faults.Duration = max(o.Faults.Duration, 3*time.Second)
		opts = append(opts, o)
	}
	i, _ := firstMatch(opts, func(_ sim.Options, res sim.Result) (struct{}, bool) {
		_, _, ok := lateAppend(res)
		return struct{}{}, ok
	})
	require.GreaterOrEqual(t, i, 0, "no seed in 1..200 catches the mutant with a violation after 1s of virtual time")

	// The seed again, traced this time: a run replays exactly.
	o := opts[i]
	var events []sim.Event
	o.Trace = func(e sim.Event) { events = append(events, e) }
	res := sim.Run(o)
	first, op, ok := lateAppend(res)
	require.True(t, ok, "seed %d does not replay", o.Seed)
	o.Trace = nil
	page := timelinePage(t, res, events, sim.TimelineOptions{Run: &o, MaxItems: 500})
	from, until := pageWindow(t, page)
	t.Logf("seed %d: %v; window %v to %v", o.Seed, first, from, until)
	assert.Contains(t, page, "FAIL")
	// The window holds the operation, or at least its answer if it is
	// too long to draw whole with at most MaxItems items.
	assert.LessOrEqual(t, from, op.Return)
	assert.GreaterOrEqual(t, until, op.Return)
	if !strings.Contains(page, fmt.Sprintf("around the end of operation #%d (too long to draw whole)", op.ID)) {
		assert.LessOrEqual(t, from, op.Invoke)
	}
	assert.Contains(t, opRect(page, op), `class="op viol"`)
	for _, f := range res.Faults {
		if f.Start < until && f.End >= from {
			assert.Contains(t, page, `data-kind="`+string(f.Kind)+`"`, "%v", f)
			assert.Regexp(t, `class="flabel[^"]*" data-kind="`+regexp.QuoteMeta(string(f.Kind))+`"[^>]*>`+regexp.QuoteMeta(string(f.Kind)), page)
		}
	}
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
		// Every span is labelled with its kind, with its description as
		// the label's tooltip.
		assert.Contains(t, page, `data-kind="`+string(f.Kind)+`"`)
		assert.Regexp(t, `<span class="flabel[^"]*" data-kind="`+regexp.QuoteMeta(string(f.Kind))+`" style="[^"]*" title="`+
			regexp.QuoteMeta(html.EscapeString(string(f.Kind)+" on "))+`[^"]*">`+regexp.QuoteMeta(string(f.Kind)), page)
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
