package sim

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// DefaultTimelineItems is how many items (client operations, messages and
// marks) a timeline draws when TimelineOptions.MaxItems is zero. Browsers
// stay responsive with a few thousand SVG elements.
const DefaultTimelineItems = 5000

// TimelineOptions shape the page WriteTimeline draws.
type TimelineOptions struct {
	// Title heads the page. Default "corfu simulation".
	Title string
	// Run, if set, is the options the run was made with; the page shows
	// them in full, as a failure report does.
	Run *Options
	// From and Until bound the window of virtual time (since the start of
	// the run) that is drawn. A zero Until means the end of the run. When
	// both are zero and the run has a violation, the window opens on the
	// first one instead (see WriteTimeline); set either to choose the
	// window yourself.
	From, Until time.Duration
	// MaxItems bounds the items drawn. When the window holds more, the page
	// draws those that start first and says where it stopped. Default
	// DefaultTimelineItems.
	MaxItems int
	// Faults are shaded on the rows of the nodes they affect, in addition to
	// the faults the run's Result records.
	Faults []FaultSpan
}

// FaultSpan is a fault as a timeline shades it: from Start to End (virtual
// times since the start of the run) on the rows of Nodes.
type FaultSpan struct {
	Kind   string        // the fault's kind, such as "partition.sym"; colours the span
	Nodes  []string      // the nodes it affects; none means every row
	Start  time.Duration // when it began
	End    time.Duration // when it healed; zero means it lasted to the end of the run
	Detail string        // shown on hover
}

// WriteTimeline writes a self-contained HTML page that draws one run on a
// virtual-time axis: a row per node (clients, layout servers, sequencer,
// storage units), each client operation as a bar from its invocation to its
// return coloured by outcome, each message as a line from its sender's row
// to its receiver's, lost messages in red, fired timeouts as ticks, and
// faults as shaded spans labelled with their kind. Every item describes
// itself on hover. The page has no external resources (inline CSS, SVG and
// a little JavaScript for zooming and the hover panel).
//
// When res has a violation (not a warning) and o sets no window, the page
// opens on the first one, as res.Err names it: a window from a little
// before the operations it involves to a little after, with those
// operations outlined in red (class "viol"). The operations it involves are
// those its Detail names ("#12 c3 read ..."); for a violation that names
// none but concerns one address (S1, S6, S7 and S10 found online, Lin),
// they are the history's operations on that address. If that window holds
// more than MaxItems items, it narrows around the operation that broke the
// rule (the first one named, or the address's earliest operation), or
// around its end if it is too long to draw whole; the involved operations
// are drawn even if the cut at MaxItems would drop them.
//
// events are the run's trace, as Options.Trace received them, in order;
// res gives the history and the verdict. The events carry the arrival of
// each message but not its sending, so the page reconstructs when each was
// sent from the order of the events: exactly for a response (its request's
// arrival, or for a parked read the event that woke it) and for a request that no fault moved in flight (the run of the
// task that sent it). The page says so.
//
// WriteTimeline returns the first error w returned.
func WriteTimeline(w io.Writer, res Result, events []Event, o TimelineOptions) error {
	if o.Title == "" {
		o.Title = "corfu simulation"
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultTimelineItems
	}
	t := buildTimeline(res, events, o)
	pw := &pageWriter{w: w}
	t.write(pw, res, o)
	return pw.err
}

// timeline is what a page draws, gathered from the trace and the history.
type timeline struct {
	msgs   []*tlMsg
	ops    []*Op
	marks  []tlMark
	faults []FaultSpan
	rows   []tlRow
	rowOf  map[string]int // node name -> index in rows

	end      time.Duration // the end of the run
	from     time.Duration // the window drawn
	until    time.Duration
	items    int  // items in the window
	drawn    int  // items drawn
	cut      bool // the window was cut short at MaxItems
	typical  time.Duration
	approxed int           // requests whose sending time is uncertain
	heal     time.Duration // when the faults healed; 0 if the run had no fault phase

	focus   *tlFocus     // the violation the page opens on, if any
	focused bool         // the window is the focus's, not the options'
	atEnd   bool         // the focus's window is around the end of its first operation
	viol    map[int]bool // IDs of the operations the focus involves
}

// tlFocus is the violation a failing run's page opens on, and the
// operations it involves.
type tlFocus struct {
	v     Violation
	ops   []*Op // the one that broke the rule first
	named bool  // the violation names them; otherwise they are on its address
}

// tlMsg is one copy of a message.
type tlMsg struct {
	id       uint64
	reply    bool
	from, to string
	op       string
	bytes    int
	sent     time.Duration
	arrived  time.Duration // the last arrival attempt
	dropped  bool          // lost when it was sent; arrived is meaningless
	lost     bool          // lost on arrival
	holds    []time.Duration
	approx   bool          // sent is uncertain (a fault moved it)
	held     time.Duration // a response's: how long the server held the request
	detail   string
	drawable bool
}

// tlMark is an event drawn as a tick on a row.
type tlMark struct {
	row  string
	at   time.Duration
	kind string
	text string
}

// tlRow is one row of the page.
type tlRow struct {
	node  string
	label string
}

// msgKey identifies a message: a call's ID and its direction.
type msgKey struct {
	id    uint64
	reply bool
}

// detailRE parses Message.String, with an optional prefix such as "held".
var detailRE = regexp.MustCompile(`^(?:(\w+) )?(request|response) (\d+) (\S+)->(\S+) (.*?), (\d+) bytes(?:, answered after (\S+))?`)

// parseDetail parses a network event's Detail.
func parseDetail(s string) (m tlMsg, prefix string, ok bool) {
	sub := detailRE.FindStringSubmatch(s)
	if sub == nil {
		return m, "", false
	}
	id, err1 := strconv.ParseUint(sub[3], 10, 64)
	n, err2 := strconv.Atoi(sub[7])
	if err1 != nil || err2 != nil {
		return m, "", false
	}
	var held time.Duration
	if sub[8] != "" {
		var err error
		if held, err = time.ParseDuration(sub[8]); err != nil {
			return m, "", false
		}
	}
	return tlMsg{id: id, reply: sub[2] == "response", from: sub[4], to: sub[5], op: sub[6], bytes: n, held: held, detail: s}, sub[1], true
}

func buildTimeline(res Result, events []Event, o TimelineOptions) *timeline {
	t := &timeline{rowOf: make(map[string]int)}
	at := func(e Event) time.Duration { return e.Time.Sub(epoch) }

	// prefixSeq[i] is the largest sequence number among events[:i+1], and
	// lastRun[i] the time of the last task start or resume among them: a
	// message whose arrival event has sequence number q was sent while the
	// scheduler processed an event before the first one whose prefixSeq
	// reaches q, and only tasks send requests.
	n := len(events)
	prefixSeq := make([]uint64, n)
	lastRun := make([]time.Duration, n)
	var maxSeq uint64
	run := time.Duration(0)
	tasks := make(map[string]string) // client number -> first task name
	for i, e := range events {
		maxSeq = max(maxSeq, e.Seq)
		prefixSeq[i] = maxSeq
		if e.Kind == KindStart || e.Kind == KindResume {
			run = at(e)
		}
		lastRun[i] = run
		if e.Kind == KindStart {
			if num := taskNumber(e.Label); num != "" && tasks[num] == "" {
				tasks[num] = strings.SplitN(e.Label, "/", 2)[0]
			}
		}
	}
	sentBy := func(seq uint64) int { // the last event processed before the sending
		return sort.Search(n, func(i int) bool { return prefixSeq[i] >= seq }) - 1
	}

	copies := make(map[msgKey][]*tlMsg)
	requestArrivals := make(map[uint64][]int) // call ID -> indexes of its request's arrival attempts
	for i, e := range events {
		now := at(e)
		t.end = max(t.end, now)
		switch e.Kind {
		case KindDeliver, KindReply:
			m, prefix, ok := parseDetail(e.Detail)
			if !ok {
				t.marks = append(t.marks, tlMark{row: e.Label, at: now, kind: e.Kind.String(), text: e.Detail})
				continue
			}
			k := msgKey{m.id, m.reply}
			if !m.reply {
				requestArrivals[m.id] = append(requestArrivals[m.id], i)
			}
			if prefix == "held" {
				if cs := copies[k]; len(cs) > 0 {
					c := cs[len(cs)-1]
					c.holds = append(c.holds, c.arrived)
					c.arrived = now
					continue
				}
			}
			c := &m
			c.arrived = now
			c.sent = now
			if last := sentBy(e.Seq); last >= 0 {
				if c.reply {
					// A server answers a request as it arrives, or
					// holds it (a parked read) for as long as the
					// response says.
					reqs := requestArrivals[m.id]
					j := sort.SearchInts(reqs, last+1) - 1
					if j >= 0 {
						c.sent = at(events[reqs[j]]) + m.held
					}
				} else {
					c.sent = lastRun[last]
				}
			}
			c.approx = prefix != ""
			c.sent = min(c.sent, now)
			copies[k] = append(copies[k], c)
			t.msgs = append(t.msgs, c)
		case KindDrop:
			m, _, ok := parseDetail(e.Detail)
			if !ok {
				t.marks = append(t.marks, tlMark{row: e.Label, at: now, kind: "drop", text: e.Detail})
				continue
			}
			k := msgKey{m.id, m.reply}
			// A drop noted while its own arrival is processed is a loss
			// on arrival; any other drop happened as it was sent.
			if i > 0 && (events[i-1].Kind == KindDeliver || events[i-1].Kind == KindReply) && events[i-1].Time.Equal(e.Time) {
				if p, _, ok := parseDetail(events[i-1].Detail); ok && p.id == m.id && p.reply == m.reply {
					if cs := copies[k]; len(cs) > 0 {
						cs[len(cs)-1].lost = true
						continue
					}
				}
			}
			c := &m
			c.sent, c.arrived, c.dropped = now, now, true
			copies[k] = append(copies[k], c)
			t.msgs = append(t.msgs, c)
		case KindTimeout:
			if num := taskNumber(e.Label); num != "" {
				t.marks = append(t.marks, tlMark{row: "client" + num, at: now, kind: "timeout", text: "deadline of " + e.Label + " passed"})
			}
		case KindStart, KindResume, KindTimer:
			// Task scheduling: implied by the operations and messages.
		case KindFunc:
			if strings.HasPrefix(e.Label, "fault ") && len(res.Faults) > 0 {
				continue // drawn from the fault records
			}
			t.marks = append(t.marks, tlMark{row: "", at: now, kind: e.Kind.String(), text: strings.TrimSpace(e.Label + " " + e.Detail)})
		default:
			t.marks = append(t.marks, tlMark{row: "", at: now, kind: e.Kind.String(), text: strings.TrimSpace(e.Label + " " + e.Detail)})
		}
	}
	t.settleRequests()
	for _, m := range t.msgs {
		if m.approx {
			t.approxed++
		}
	}

	if res.History != nil {
		for i := range res.History.Ops {
			op := &res.History.Ops[i]
			t.ops = append(t.ops, op)
			t.end = max(t.end, op.Invoke, op.Return)
		}
	}
	t.end = max(t.end, res.VirtualTime)
	t.focus = findFocus(res)
	if t.focus != nil {
		t.viol = make(map[int]bool, len(t.focus.ops))
		for _, op := range t.focus.ops {
			t.viol[op.ID] = true
		}
	}
	t.faults = append(t.recordedFaults(res, tasks), o.Faults...)
	t.heal = res.Heal

	// The typical one-way delay, for drawing lost messages.
	var delays []time.Duration
	for _, m := range t.msgs {
		if !m.dropped && !m.approx && len(m.holds) == 0 {
			delays = append(delays, m.arrived-m.sent)
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		t.typical = delays[len(delays)/2]
	}

	t.window(o)
	t.layoutRows(tasks)
	return t
}

// opRefRE matches an operation as Op.String formats it inside a
// violation's Detail: its ID, its client and its kind (any OpKind's name).
var opRefRE = regexp.MustCompile(`#(\d+) c(\d+) [a-z][a-z-]* [a-z]+=`)

// findFocus returns the first violation of res that is not a warning, with
// the operations it involves, or nil if there is none or it involves no
// operation the history holds.
func findFocus(res Result) *tlFocus {
	if res.History == nil {
		return nil
	}
	for _, v := range res.Violations {
		if v.Warning {
			continue
		}
		f := &tlFocus{v: v, ops: violationOps(v, res.History)}
		if len(f.ops) > 0 {
			f.named = len(opRefRE.FindStringIndex(v.Detail)) > 0
			return f
		}
		return nil // the first violation involves no operation: no focus
	}
	return nil
}

// violationOps returns the operations of h that v involves: those its
// Detail names, in the order named; or, if it names none and it concerns
// one global address, the operations on that address, in invocation order.
func violationOps(v Violation, h *History) []*Op {
	var out []*Op
	for _, m := range opRefRE.FindAllStringSubmatch(v.Detail, -1) {
		id, err1 := strconv.Atoi(m[1])
		client, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil || id < 0 || id >= len(h.Ops) || h.Ops[id].Client != client {
			continue
		}
		if op := &h.Ops[id]; !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	if len(out) > 0 || !addressRule(v.Invariant) {
		return out
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Addr != v.Addr {
			continue
		}
		switch op.Kind {
		case OpRead, OpFill:
			out = append(out, op)
		case OpAppend:
			// An append's Addr is the address it got; a failed one got none.
			if op.Outcome == OK || op.Outcome == Unknown && op.Addr != 0 {
				out = append(out, op)
			}
		case OpTrim:
			if op.Value != "prefix" { // a prefix trim's Addr is its mark
				out = append(out, op)
			}
		}
	}
	return out
}

// addressRule reports whether violations of inv that name no operation
// concern the global address in their Addr: those the Monitor finds online
// about one address, and Lin. The rules checked on the history name their
// operations; the others (S8 gives a unit's local address, S9 and the
// liveness rules none, S16 about a kvmap replica none) are not about one
// global address.
func addressRule(inv string) bool {
	switch inv {
	case "S1", "S6", "S7", "S10", "Lin":
		return true
	}
	return false
}

// settleRequests corrects the sending times of requests that a fault moved
// in flight (a swap reschedules an arrival from a later event, which makes
// the reconstruction place its sending too late). Calls are numbered in the
// order they are sent, and a reconstructed time is never early, so a
// request cannot have been sent after any request of a later call; such
// requests are moved back and marked approximate.
func (t *timeline) settleRequests() {
	var reqs []*tlMsg
	for _, m := range t.msgs {
		if !m.reply {
			reqs = append(reqs, m)
		}
	}
	slices.SortStableFunc(reqs, func(a, b *tlMsg) int { return cmp.Compare(b.id, a.id) })
	limit := time.Duration(-1)
	for _, m := range reqs {
		if limit >= 0 && m.sent > limit {
			m.sent, m.approx = limit, true
		}
		if limit < 0 || m.sent < limit {
			limit = m.sent
		}
	}
}

// taskNumber returns the number a task's name ends with ("reader3" -> "3"),
// ignoring sub-tasks ("appender1/afterfunc"), or "". The simulator's client
// tasks and their network nodes share it: task readerN runs the client
// whose node is clientN and whose operations the history records as client
// N.
func taskNumber(label string) string {
	name := strings.SplitN(label, "/", 2)[0]
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || i == 0 {
		return ""
	}
	return name[i:]
}

// recordedFaults returns the faults res records, for shading. tasks maps
// client numbers to task names, to put a reconfiguration on the row of the
// client that ran it.
func (t *timeline) recordedFaults(res Result, tasks map[string]string) []FaultSpan {
	known := make(map[string]bool)
	for _, m := range t.msgs {
		known[m.from], known[m.to] = true, true
	}
	var reconfigurer []string
	for num, task := range tasks {
		if strings.HasPrefix(task, "reconfigurer") {
			reconfigurer = append(reconfigurer, "client"+num)
		}
	}
	slices.Sort(reconfigurer)
	out := make([]FaultSpan, 0, len(res.Faults))
	for _, r := range res.Faults {
		end := r.End
		if end <= r.Start {
			end = r.Start + 1 // an instant: a reconfiguration that returned at once
		}
		var nodes []string
		for _, nd := range targetNodes(r.Target) {
			if known[nd] || nodeNameRE.MatchString(nd) {
				nodes = append(nodes, nd)
			}
		}
		if r.Kind == FaultReconfig {
			nodes = append(nodes, reconfigurer...)
		}
		out = append(out, FaultSpan{Kind: string(r.Kind), Nodes: nodes, Start: r.Start, End: end,
			Detail: strings.TrimSpace(r.Target + " " + r.Detail)})
	}
	return out
}

// nodeNameRE matches the names the simulator gives its nodes ("seq1" is
// the standby sequencer).
var nodeNameRE = regexp.MustCompile(`^(?:(?:client|layout|unit|spare)\d+|seq\d*)$`)

// targetNodes returns the names in a FaultRecord's Target: a node
// ("unit2"), a path ("client1->seq"), a pair ("unit0<->layout1"), groups
// ("layout0,unit1|seq,client2") or a description ("replace unit1 by
// spare0"); none for "*", every link.
func targetNodes(target string) []string {
	if target == "*" {
		return nil
	}
	var out []string
	for _, f := range strings.FieldsFunc(target, func(r rune) bool { return strings.ContainsRune("|,<-> ", r) }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// item is something drawn, for windowing: its start and end.
type item struct {
	start, end time.Duration
	order      int // ops, then messages, then marks
	idx        int
}

// window picks what is drawn: the items that overlap [From, Until), cut
// at MaxItems by start time; or, when the options set no window and the
// run has a focus, the focus's window.
func (t *timeline) window(o TimelineOptions) {
	t.from = max(o.From, 0)
	t.until = t.end
	if o.Until > 0 {
		t.until = min(o.Until, t.end)
	}
	if o.From == 0 && o.Until == 0 && t.focus != nil {
		t.from, t.until = t.focusWindow(o.MaxItems)
		t.focused = true
	}
	if t.until <= t.from {
		t.until = t.from + time.Millisecond
	}
	items := t.itemsIn(t.from, t.until)
	t.items = len(items)
	var forced []item // the focus's operations, drawn whatever the cut
	if len(items) > o.MaxItems {
		cut := items[o.MaxItems].start
		t.cut = true
		if cut > t.from {
			t.until = cut
		}
		for len(items) > 0 && (items[len(items)-1].start >= t.until || len(items) > o.MaxItems) {
			last := items[len(items)-1]
			if last.order == 0 && t.viol[t.ops[last.idx].ID] {
				forced = append(forced, last)
			}
			items = items[:len(items)-1]
		}
		if len(forced) > 0 {
			slices.Reverse(forced)
			for _, it := range forced {
				t.until = max(t.until, it.start+1, it.end)
			}
			items = append(items, forced...)
		}
	}
	t.drawn = len(items)
	keepOps := make([]*Op, 0, len(items))
	keepMsgs := make([]*tlMsg, 0, len(items))
	var keepMarks []tlMark
	for _, it := range items {
		switch it.order {
		case 0:
			keepOps = append(keepOps, t.ops[it.idx])
		case 1:
			keepMsgs = append(keepMsgs, t.msgs[it.idx])
		case 2:
			keepMarks = append(keepMarks, t.marks[it.idx])
		}
	}
	t.ops, t.msgs, t.marks = keepOps, keepMsgs, keepMarks
}

// opEnd is when op ends on the drawing: its return, or the end of the run
// if it never returned.
func (t *timeline) opEnd(op *Op) time.Duration {
	if op.Outcome == Pending {
		return t.end
	}
	return op.Return
}

// itemsIn returns the items that overlap [from, until), sorted by start.
func (t *timeline) itemsIn(from, until time.Duration) []item {
	var items []item
	in := func(start, end time.Duration) bool { return end >= from && start < until }
	for i, op := range t.ops {
		if end := t.opEnd(op); in(op.Invoke, end) {
			items = append(items, item{op.Invoke, end, 0, i})
		}
	}
	for i, m := range t.msgs {
		if in(m.sent, m.arrived) {
			items = append(items, item{m.sent, m.arrived, 1, i})
		}
	}
	for i, mk := range t.marks {
		if in(mk.at, mk.at) {
			items = append(items, item{mk.at, mk.at, 2, i})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.order, b.order), cmp.Compare(a.idx, b.idx))
	})
	return items
}

// countIn counts the items that overlap [from, until).
func (t *timeline) countIn(from, until time.Duration) int {
	n := 0
	in := func(start, end time.Duration) bool { return end >= from && start < until }
	for _, op := range t.ops {
		if in(op.Invoke, t.opEnd(op)) {
			n++
		}
	}
	for _, m := range t.msgs {
		if in(m.sent, m.arrived) {
			n++
		}
	}
	for _, mk := range t.marks {
		if in(mk.at, mk.at) {
			n++
		}
	}
	return n
}

// focusMinPad is the least margin a focus window leaves on each side of
// the operations it shows.
const focusMinPad = 50 * time.Millisecond

// focusWindow returns the window a failing run's page opens on: the span
// of the focus's operations with a margin on each side of a quarter of it
// (at least focusMinPad). When that holds more than maxItems items, the
// margin shrinks; when even the bare span does, the window is that of the
// operation that broke the rule alone, its margin shrunk likewise; and when
// even that operation is too long, the window is around its end.
func (t *timeline) focusWindow(maxItems int) (time.Duration, time.Duration) {
	fit := func(lo, hi time.Duration) (time.Duration, time.Duration, bool) {
		at := func(pad time.Duration) (time.Duration, time.Duration) {
			return max(lo-pad, 0), min(hi+pad, t.end)
		}
		pad := max((hi-lo)/4, focusMinPad)
		if from, until := at(pad); t.countIn(from, until) <= maxItems {
			return from, until, true
		}
		if t.countIn(at(0)) > maxItems {
			from, until := at(0)
			return from, until, false
		}
		good, bad := time.Duration(0), pad // the margin fits at good, not at bad
		for bad-good > time.Microsecond {
			mid := good + (bad-good)/2
			if t.countIn(at(mid)) <= maxItems {
				good = mid
			} else {
				bad = mid
			}
		}
		from, until := at(good)
		return from, until, true
	}
	ops := t.focus.ops
	lo, hi := ops[0].Invoke, t.opEnd(ops[0])
	for _, op := range ops[1:] {
		lo, hi = min(lo, op.Invoke), max(hi, t.opEnd(op))
	}
	if from, until, ok := fit(lo, hi); ok {
		return from, until
	}
	if len(ops) > 1 {
		if from, until, ok := fit(ops[0].Invoke, t.opEnd(ops[0])); ok {
			return from, until
		}
	}
	// The operation alone is too long to draw whole: open on its end, when
	// it answered (or the end of the run, if it never did).
	end := t.opEnd(ops[0])
	from, until, _ := fit(end, end)
	t.atEnd = true
	return from, until
}

// layoutRows orders the rows: clients, layout servers, the sequencer,
// units, spares, then anything else, each group in natural order.
func (t *timeline) layoutRows(tasks map[string]string) {
	names := make(map[string]bool)
	for _, op := range t.ops {
		names[fmt.Sprintf("client%d", op.Client)] = true
	}
	for _, m := range t.msgs {
		names[m.from], names[m.to] = true, true
	}
	needOther := false
	for _, mk := range t.marks {
		if mk.row == "" {
			needOther = true
		} else {
			names[mk.row] = true
		}
	}
	for _, f := range t.faults {
		for _, nd := range f.Nodes {
			names[nd] = true
		}
	}
	list := make([]string, 0, len(names))
	for nd := range names {
		list = append(list, nd)
	}
	slices.SortFunc(list, compareNodes)
	for _, nd := range list {
		label := nd
		if strings.HasPrefix(nd, "client") {
			if task := tasks[strings.TrimPrefix(nd, "client")]; task != "" {
				label = nd + " · " + task
			}
		}
		t.rowOf[nd] = len(t.rows)
		t.rows = append(t.rows, tlRow{node: nd, label: label})
	}
	if needOther {
		t.rowOf[""] = len(t.rows)
		t.rows = append(t.rows, tlRow{node: "", label: "scheduler"})
	}
}

// compareNodes orders node names by role, then by name with numbers
// compared as numbers.
func compareNodes(a, b string) int {
	rank := func(s string) int {
		for i, p := range []string{"client", "layout", "seq", "unit", "spare"} {
			if strings.HasPrefix(s, p) {
				return i
			}
		}
		return 5
	}
	split := func(s string) (string, int) {
		i := len(s)
		for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
			i--
		}
		n, err := strconv.Atoi(s[i:])
		if err != nil {
			return s, -1
		}
		return s[:i], n
	}
	pa, na := split(a)
	pb, nb := split(b)
	return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(pa, pb), cmp.Compare(na, nb), cmp.Compare(a, b))
}

// pageWriter writes to w until the first error.
type pageWriter struct {
	w   io.Writer
	err error
}

func (p *pageWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *pageWriter) print(s string) {
	if p.err == nil {
		_, p.err = io.WriteString(p.w, s)
	}
}

// esc escapes text for HTML content and attributes.
func esc(s string) string { return html.EscapeString(s) }

// Geometry of the drawing, in pixels.
const (
	tlRowHeight   = 30
	tlOpTop       = 3  // an operation's bar, from the top of its row
	tlOpHeight    = 9  //
	tlMsgY        = 20 // where messages leave and reach a row
	tlFaultLabelY = 16 // where a fault's label sits in a row
	tlMaxLabel    = 4000
)

var outcomeColours = map[Outcome]string{
	Pending:   "#ffffff",
	OK:        "#3c9a5f",
	Junk:      "#c9a000",
	Unwritten: "#9e9e9e",
	Trimmed:   "#8e6cc2",
	Failed:    "#d64541",
	Unknown:   "#e67e22",
}

var faultColours = []string{"#e6194b", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#008080", "#9a6324"}

func faultColour(kind string) string {
	return faultColours[fnvString(fnvOffset, kind)%uint64(len(faultColours))]
}

// x converts a virtual time to the drawing's horizontal unit, microseconds
// since the window's start.
func (t *timeline) x(d time.Duration) string {
	return strconv.FormatFloat(float64(d-t.from)/1e3, 'f', -1, 64)
}

// w converts a duration to the drawing's horizontal unit.
func (t *timeline) w(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e3, 'f', -1, 64)
}

func (t *timeline) y(row, offset int) int { return row*tlRowHeight + offset }

func (t *timeline) write(p *pageWriter, res Result, o TimelineOptions) {
	p.printf(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%s</title>
<style>%s</style>
</head>
<body>
<h1>%s</h1>
`, esc(o.Title), timelineCSS, esc(o.Title))
	t.writeSummary(p, res, o)
	t.writeLegend(p)

	span := max(t.until-t.from, time.Microsecond)
	width := min(max(t.drawn*6, 1200), 60000)
	height := len(t.rows) * tlRowHeight
	p.printf(`<div class="tools"><button id="zin" title="zoom in (or ctrl+wheel)">zoom in</button> <button id="zout">zoom out</button> <button id="zfit">fit</button> <span class="muted">virtual time %v to %v</span></div>
<div class="chart">
<div class="labels"><div class="axisgap"></div>`, t.from, t.until)
	for _, r := range t.rows {
		p.printf(`<div class="label" title="%s">%s</div>`, esc(r.node), esc(r.label))
	}
	p.printf(`</div>
<div class="scroll" id="scroll"><div class="inner" id="inner" data-from="%d" data-span="%d" data-width="%d" style="width:%dpx">
<div class="axis" id="axis"></div>
<svg id="plot" xmlns="http://www.w3.org/2000/svg" width="100%%" height="%d" viewBox="0 0 %s %d" preserveAspectRatio="none">
`, t.from, span, width, width, height, strconv.FormatFloat(float64(span)/1e3, 'f', -1, 64), height)

	vw := strconv.FormatFloat(float64(span)/1e3, 'f', -1, 64)
	for i := range t.rows {
		if i%2 == 1 {
			p.printf(`<rect class="stripe" x="0" y="%d" width="%s" height="%d"/>`+"\n", t.y(i, 0), vw, tlRowHeight)
		}
	}
	p.print(`<g id="grid"></g>` + "\n")
	t.writeFaults(p)
	if t.heal > t.from && t.heal < t.until {
		p.printf(`<line class="heal" x1="%s" y1="0" x2="%s" y2="%d"><title>%s</title></line>`+"\n",
			t.x(t.heal), t.x(t.heal), height, esc(fmt.Sprintf("%v: the faults heal; the liveness phase begins", t.heal)))
	}
	t.writeMessages(p)
	t.writeOps(p)
	t.writeMarks(p)
	t.writeViolationMark(p, height)
	p.print("</svg>\n")
	t.writeFaultLabels(p, height)
	p.print("</div></div>\n</div>\n")
	p.print(`<div id="info" class="info">Hover over an operation, a message or a mark to see it here; click to pin it.</div>` + "\n")
	p.printf("<script>%s</script>\n</body>\n</html>\n", timelineJS)
}

func (t *timeline) writeSummary(p *pageWriter, res Result, o TimelineOptions) {
	verdict := `<span class="pass">PASS</span>`
	if res.Err != nil {
		verdict = `<span class="fail">FAIL</span>`
	}
	ops := 0
	if res.History != nil {
		ops = len(res.History.Ops)
	}
	p.print(`<table class="summary">`)
	row := func(k, v string) { p.printf("<tr><th>%s</th><td>%s</td></tr>", esc(k), v) }
	if o.Run != nil {
		row("seed", strconv.FormatUint(o.Run.Seed, 10))
	}
	row("verdict", verdict)
	row("operations", fmt.Sprintf("%d: %d appends acknowledged, %d reads returned an entry or junk, %d failed", ops, res.Appends, res.Reads, res.Failed))
	lin := "not checked"
	switch res.Linearizability.Result {
	case porcupine.Ok:
		lin = fmt.Sprintf("linearizable (%d register operations on %d addresses)", res.Linearizability.Ops, res.Linearizability.Addrs)
	case porcupine.Illegal:
		lin = fmt.Sprintf("NOT linearizable at addresses %v", res.Linearizability.Illegal)
	case porcupine.Unknown:
		lin = "unknown (the check timed out)"
	}
	row("linearizability", esc(lin))
	row("virtual time", esc(res.VirtualTime.String()))
	row("events", strconv.FormatUint(res.Steps, 10))
	row("newest epoch", strconv.Itoa(res.Epochs))
	row("trace hash", fmt.Sprintf("%016x", res.TraceHash))
	if len(t.faults) > 0 {
		row("faults", esc(faultSummary(t.faults)))
	}
	if t.heal > 0 {
		row("fault phase", esc(fmt.Sprintf("0s to %v, then healed", t.heal)))
	}
	p.print("</table>\n")
	if o.Run != nil {
		ro := *o.Run
		ro.Trace = nil
		p.printf(`<details><summary>options</summary><pre>%s</pre></details>`+"\n", esc(fmt.Sprintf("%+v", ro)))
	}
	if res.Err != nil {
		msg := res.Err.Error()
		if len(msg) > tlMaxLabel {
			msg = msg[:tlMaxLabel] + "\n... (cut)"
		}
		p.printf(`<pre class="err">%s</pre>`+"\n", esc(msg))
	}
	if len(res.Violations) > 0 {
		p.print(`<details open><summary>violations and warnings</summary><ul class="violations">`)
		for i, v := range res.Violations {
			if i == 50 {
				p.printf("<li>... and %d more</li>", len(res.Violations)-50)
				break
			}
			class := "viol"
			if v.Warning {
				class = "warn"
			}
			if t.focus != nil && t.focused && v == t.focus.v {
				class += " focus"
			}
			p.printf(`<li class="%s">%s</li>`, class, esc(v.String()))
		}
		p.print("</ul></details>\n")
	}
	if len(t.faults) > 0 {
		p.print(`<details><summary>faults</summary><ul>`)
		for _, f := range t.faults {
			p.printf("<li>%s</li>", esc(f.describe()))
		}
		p.print("</ul></details>\n")
	}
	var notes []string
	if t.focus != nil && t.focused {
		how := "it names"
		if !t.focus.named {
			how = fmt.Sprintf("on address %d", t.focus.v.Addr)
		}
		ids := make([]string, len(t.focus.ops))
		for i, op := range t.focus.ops {
			ids[i] = fmt.Sprintf("#%d", op.ID)
		}
		if len(ids) > 12 {
			ids = append(ids[:12], fmt.Sprintf("and %d more", len(t.focus.ops)-12))
		}
		around := "around the operations " + how
		if t.atEnd {
			op := t.focus.ops[0]
			around = fmt.Sprintf("around the end of operation #%d (too long to draw whole), the first of the operations %s", op.ID, how)
		}
		notes = append(notes, fmt.Sprintf("This page opens on the first violation, %s at address %d: virtual time %v to %v, %s (%s), outlined in red. Draw another window with From and Until (corfu sim --trace-from, --trace-until).",
			t.focus.v.Invariant, t.focus.v.Addr, t.from, t.until, around, strings.Join(ids, ", ")))
	}
	if t.cut {
		notes = append(notes, fmt.Sprintf("Truncated: the window holds %d items, more than the %d this page draws; it shows those that start before %v. Draw another window with From and Until (corfu sim --trace-from, --trace-until).",
			t.items, o.MaxItems, t.until))
	}
	notes = append(notes, "Messages are drawn from sending to arrival. The trace records arrivals; sending times are reconstructed from the order of events, exactly for responses and for requests that no fault moved.")
	if t.approxed > 0 {
		notes = append(notes, fmt.Sprintf("%d messages were moved in flight by a fault (dashed); their sending times are approximate.", t.approxed))
	}
	for _, n := range notes {
		p.printf(`<p class="note">%s</p>`+"\n", esc(n))
	}
}

func (t *timeline) writeLegend(p *pageWriter) {
	p.print(`<div class="legend">`)
	for _, out := range []Outcome{OK, Junk, Unwritten, Trimmed, Failed, Unknown, Pending} {
		p.printf(`<span><i class="sw op-%s" style="background:%s"></i>%s</span>`, out, outcomeColours[out], out)
	}
	p.print(`<span><i class="ln req"></i>request</span><span><i class="ln resp"></i>response</span><span><i class="ln drop"></i>lost message</span><span><i class="ln held"></i>held or moved by a fault</span><span><i class="tick"></i>timeout</span><span><i class="sw" style="background:#f5823155"></i>fault, labelled with its kind</span><span><i class="ln heal"></i>heal</span><span><i class="sw viol"></i>operation the first violation involves</span>`)
	p.print("</div>\n")
}

// faultSummary counts faults by kind: "crash 2, drop 1".
func faultSummary(fs []FaultSpan) string {
	counts := make(map[string]int)
	for _, f := range fs {
		counts[f.Kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return fmt.Sprintf("%d: %s", len(fs), strings.Join(parts, ", "))
}

func (f FaultSpan) describe() string {
	where := "everywhere"
	if len(f.Nodes) > 0 {
		where = strings.Join(f.Nodes, ", ")
	}
	end := "the end"
	if f.End > 0 {
		end = f.End.String()
	}
	s := fmt.Sprintf("%s on %s, %v to %s", f.Kind, where, f.Start, end)
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

func (t *timeline) writeFaults(p *pageWriter) {
	for _, f := range t.faults {
		start, end, rows, ok := t.faultRows(f)
		if !ok {
			continue
		}
		colour := faultColour(f.Kind)
		title := esc(f.describe())
		kind := esc(f.Kind)
		if len(rows) == 0 {
			p.printf(`<rect class="fault all" data-kind="%s" x="%s" y="0" width="%s" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
				kind, t.x(start), t.w(end-start), len(t.rows)*tlRowHeight, colour, title)
			continue
		}
		for _, r := range rows {
			p.printf(`<rect class="fault" data-kind="%s" x="%s" y="%d" width="%s" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
				kind, t.x(start), t.y(r, 0), t.w(end-start), tlRowHeight, colour, title)
		}
	}
}

// faultRows returns the window's part of f, [start, end), and the rows it
// shades (none: every row); ok is false if f lies outside the window.
func (t *timeline) faultRows(f FaultSpan) (start, end time.Duration, rows []int, ok bool) {
	end = f.End
	if end <= 0 || end > t.until {
		end = t.until
	}
	start = max(f.Start, t.from)
	if end < start {
		return 0, 0, nil, false
	}
	for _, nd := range f.Nodes {
		if r, ok := t.rowOf[nd]; ok {
			rows = append(rows, r)
		}
	}
	return start, end, rows, true
}

// writeFaultLabels writes each fault span's kind at the start of the span,
// on every row it shades, as HTML over the drawing (text inside the SVG
// would be stretched with it); a fault of the whole network gets one label,
// stacked with the others from the top row down. Each label carries the
// fault's description as its tooltip.
func (t *timeline) writeFaultLabels(p *pageWriter, height int) {
	span := float64(max(t.until-t.from, time.Microsecond))
	p.printf(`<div class="flabels" id="flabels" style="height:%dpx">`+"\n", height)
	all := 0
	for _, f := range t.faults {
		start, _, rows, ok := t.faultRows(f)
		if !ok {
			continue
		}
		left := strconv.FormatFloat(float64(start-t.from)/span*100, 'f', 4, 64)
		title, kind := esc(f.describe()), esc(f.Kind)
		colour := faultColour(f.Kind)
		if len(rows) == 0 {
			top := (all % max(len(t.rows), 1)) * tlRowHeight
			all++
			p.printf(`<span class="flabel all" data-kind="%s" style="left:%s%%;top:%dpx;border-color:%s" title="%s">%s · all</span>`+"\n",
				kind, left, top+tlFaultLabelY, colour, title, kind)
			continue
		}
		for _, r := range rows {
			p.printf(`<span class="flabel" data-kind="%s" style="left:%s%%;top:%dpx;border-color:%s" title="%s">%s</span>`+"\n",
				kind, left, t.y(r, tlFaultLabelY), colour, title, kind)
		}
	}
	p.print("</div>\n")
}

// writeViolationMark draws a red line across every row where the
// operation that broke the focus's rule returned (or began, if it never
// returned), so that the violation can be found at any zoom.
func (t *timeline) writeViolationMark(p *pageWriter, height int) {
	if t.focus == nil || !t.focused {
		return
	}
	op := t.focus.ops[0]
	at := op.Return
	if op.Outcome == Pending {
		at = op.Invoke
	}
	if at < t.from || at > t.until {
		return
	}
	p.printf(`<line class="violmark" x1="%s" y1="0" x2="%s" y2="%d"><title>%s</title></line>`+"\n",
		t.x(at), t.x(at), height, esc(fmt.Sprintf("%v: %v", at, t.focus.v)))
}

func (t *timeline) writeMessages(p *pageWriter) {
	for _, m := range t.msgs {
		from, ok1 := t.rowOf[m.from]
		to, ok2 := t.rowOf[m.to]
		if !ok1 || !ok2 {
			continue
		}
		class := "req"
		if m.reply {
			class = "resp"
		}
		y1, y2 := t.y(from, tlMsgY), t.y(to, tlMsgY)
		var title string
		switch {
		case m.dropped:
			// Lost as it was sent: a stub halfway to the receiver.
			mid := (y1 + y2) / 2
			p.printf(`<line class="m drop" x1="%s" y1="%d" x2="%s" y2="%d"><title>%s</title></line>`+"\n",
				t.x(m.sent), y1, t.x(m.sent+t.typical/2), mid,
				esc(fmt.Sprintf("%s: lost when sent at %v", m.detail, m.sent)))
			continue
		case m.lost:
			class += " lost"
			title = fmt.Sprintf("%s: sent %v, lost on arrival at %v", m.detail, m.sent, m.arrived)
		default:
			title = fmt.Sprintf("%s: sent %v, arrived %v (%v in flight)", m.detail, m.sent, m.arrived, m.arrived-m.sent)
		}
		if len(m.holds) > 0 {
			class += " held"
			title += fmt.Sprintf("; held at the receiver from %v", m.holds[0])
		}
		if m.approx {
			class += " held"
			title += "; sending time approximate"
		}
		p.printf(`<line class="m %s" x1="%s" y1="%d" x2="%s" y2="%d"><title>%s</title></line>`+"\n",
			class, t.x(m.sent), y1, t.x(m.arrived), y2, esc(title))
	}
}

func (t *timeline) writeOps(p *pageWriter) {
	for _, op := range t.ops {
		r, ok := t.rowOf[fmt.Sprintf("client%d", op.Client)]
		if !ok {
			continue
		}
		end := op.Return
		extra := ""
		if op.Outcome == Pending {
			end = t.until
			extra = ` stroke-dasharray="4 2"`
		}
		title := fmt.Sprintf("%s (took %v)", strings.TrimSpace(op.String()), end-op.Invoke)
		class := "op"
		if t.viol[op.ID] {
			class = "op viol"
			title = fmt.Sprintf("involved in the %s violation: %s", t.focus.v.Invariant, title)
		}
		p.printf(`<rect class="%s" x="%s" y="%d" width="%s" height="%d" fill="%s"%s><title>%s</title></rect>`+"\n",
			class, t.x(op.Invoke), t.y(r, tlOpTop), t.w(end-op.Invoke), tlOpHeight, outcomeColours[op.Outcome], extra, esc(title))
	}
}

func (t *timeline) writeMarks(p *pageWriter) {
	for _, mk := range t.marks {
		r, ok := t.rowOf[mk.row]
		if !ok {
			continue
		}
		p.printf(`<line class="mk %s" x1="%s" y1="%d" x2="%s" y2="%d"><title>%s</title></line>`+"\n",
			esc(mk.kind), t.x(mk.at), t.y(r, 2), t.x(mk.at), t.y(r, tlRowHeight-2),
			esc(fmt.Sprintf("%v %s: %s", mk.at, mk.kind, mk.text)))
	}
}

const timelineCSS = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px; }
table.summary th { text-align: left; padding-right: 12px; font-weight: 600; }
.pass { color: #2e7d32; font-weight: 700; }
.fail { color: #c62828; font-weight: 700; }
pre.err { background: #fdecea; padding: 8px; white-space: pre-wrap; max-height: 12em; overflow: auto; }
ul.violations li.viol { color: #c62828; }
ul.violations li.warn { color: #8d6e00; }
.note { color: #555; margin: 4px 0; }
.muted { color: #777; }
.legend { margin: 8px 0; }
.legend span { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; vertical-align: middle; margin-right: 4px; }
.legend .sw { width: 14px; height: 9px; border: 1px solid #888; }
.legend .ln { width: 22px; height: 0; border-top: 2px solid; }
.legend .ln.req { border-color: #3b6fb6; }
.legend .ln.resp { border-color: #2aa198; }
.legend .ln.drop { border-color: #d0312d; }
.legend .ln.held { border-color: #e67e22; border-top-style: dashed; }
.legend .ln.heal { border-color: #2e7d32; border-top-style: dashed; }
.legend .tick { width: 0; height: 12px; border-left: 2px solid #b35c00; }
.tools { margin: 6px 0; }
.chart { display: flex; border: 1px solid #ccc; }
.labels { flex: none; width: 200px; border-right: 1px solid #ccc; background: #fafafa; }
.axisgap { height: 22px; border-bottom: 1px solid #ccc; }
.label { height: 30px; line-height: 30px; padding: 0 6px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; font-family: ui-monospace, monospace; font-size: 12px; }
.label:nth-child(odd) { background: #f0f0f0; }
.scroll { flex: 1; overflow-x: auto; overflow-y: hidden; }
.inner { position: relative; min-width: 100%; }
.axis { position: relative; height: 22px; border-bottom: 1px solid #ccc; font-size: 11px; color: #555; }
.axis span { position: absolute; top: 4px; transform: translateX(-50%); white-space: nowrap; }
svg { display: block; }
svg .stripe { fill: #f0f0f0; }
svg .grid { stroke: #ddd; stroke-width: 1; vector-effect: non-scaling-stroke; }
svg .fault { opacity: 0.18; }
svg .fault.all { opacity: 0.07; }
svg .op { stroke: #333; stroke-width: 0.5; vector-effect: non-scaling-stroke; }
svg .m { stroke-width: 1.2; vector-effect: non-scaling-stroke; opacity: 0.75; }
svg .m.req { stroke: #3b6fb6; }
svg .m.resp { stroke: #2aa198; }
svg .m.drop, svg .m.lost { stroke: #d0312d; stroke-width: 2; }
svg .m.held { stroke-dasharray: 4 3; stroke: #e67e22; }
svg .heal { stroke: #2e7d32; stroke-width: 2; stroke-dasharray: 6 4; vector-effect: non-scaling-stroke; }
svg .mk { stroke: #b35c00; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg .op.viol { stroke: #c62828; stroke-width: 3; }
svg .violmark { stroke: #c62828; stroke-width: 1.5; stroke-dasharray: 3 3; vector-effect: non-scaling-stroke; }
.flabels { position: absolute; left: 0; right: 0; top: 23px; pointer-events: none; }
.flabel { position: absolute; font-size: 10px; line-height: 12px; padding: 0 2px; white-space: nowrap; background: #ffffffcc; border-left: 3px solid; color: #333; pointer-events: auto; cursor: default; }
.flabel.all { font-style: italic; }
ul.violations li.focus { font-weight: 700; }
.legend .sw.viol { border: 2px solid #c62828; background: #fff; }
svg .hover { stroke: #000 !important; stroke-width: 3 !important; opacity: 1 !important; }
.info { position: sticky; bottom: 0; background: #fffbe6; border: 1px solid #e0c97a; padding: 6px 8px; margin-top: 8px; font-family: ui-monospace, monospace; font-size: 12px; min-height: 1.4em; white-space: pre-wrap; }
`

const timelineJS = `
(function () {
  var inner = document.getElementById('inner'), scroll = document.getElementById('scroll');
  var axis = document.getElementById('axis'), grid = document.getElementById('grid');
  var plot = document.getElementById('plot'), info = document.getElementById('info');
  var from = +inner.dataset.from, span = +inner.dataset.span, initial = +inner.dataset.width;
  var svgNS = 'http://www.w3.org/2000/svg';
  function fmt(ns) {
    if (ns === 0) return '0';
    var a = Math.abs(ns);
    if (a >= 1e9) return +(ns / 1e9).toFixed(3) + 's';
    if (a >= 1e6) return +(ns / 1e6).toFixed(3) + 'ms';
    if (a >= 1e3) return +(ns / 1e3).toFixed(3) + 'µs';
    return ns + 'ns';
  }
  function ticks() {
    var px = inner.clientWidth || initial;
    var raw = span * 110 / px, step = Math.pow(10, Math.floor(Math.log10(raw)));
    if (raw / step > 5) step *= 5; else if (raw / step > 2) step *= 2;
    axis.textContent = '';
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    var h = plot.getAttribute('height');
    for (var t = Math.ceil(from / step) * step; t <= from + span; t += step) {
      var s = document.createElement('span');
      s.style.left = ((t - from) / span * 100) + '%';
      s.textContent = fmt(t);
      axis.appendChild(s);
      var l = document.createElementNS(svgNS, 'line');
      var x = (t - from) / 1e3;
      l.setAttribute('class', 'grid');
      l.setAttribute('x1', x); l.setAttribute('x2', x);
      l.setAttribute('y1', 0); l.setAttribute('y2', h);
      grid.appendChild(l);
    }
  }
  function setWidth(px, anchor) {
    var old = inner.clientWidth;
    px = Math.max(scroll.clientWidth, Math.min(px, 2000000));
    if (anchor === undefined) anchor = scroll.clientWidth / 2;
    var at = (scroll.scrollLeft + anchor) / old;
    inner.style.width = px + 'px';
    scroll.scrollLeft = at * px - anchor;
    ticks();
  }
  document.getElementById('zin').onclick = function () { setWidth(inner.clientWidth * 2); };
  document.getElementById('zout').onclick = function () { setWidth(inner.clientWidth / 2); };
  document.getElementById('zfit').onclick = function () { setWidth(scroll.clientWidth); };
  scroll.addEventListener('wheel', function (e) {
    if (!e.ctrlKey) return;
    e.preventDefault();
    var r = scroll.getBoundingClientRect();
    setWidth(inner.clientWidth * (e.deltaY < 0 ? 1.25 : 0.8), e.clientX - r.left);
  }, { passive: false });
  var pinned = null, lit = null;
  function show(el) {
    if (lit) lit.classList.remove('hover');
    lit = el;
    if (!el) return;
    el.classList.add('hover');
    var t = el.querySelector('title');
    info.textContent = t ? t.textContent : '';
  }
  plot.addEventListener('mouseover', function (e) {
    if (pinned) return;
    var el = e.target.closest('rect.op, line.m, line.mk, line.heal, line.violmark, rect.fault');
    if (el) show(el);
  });
  document.getElementById('flabels').addEventListener('mouseover', function (e) {
    if (pinned || !e.target.classList.contains('flabel')) return;
    show(null);
    info.textContent = 'fault ' + e.target.getAttribute('title');
  });
  plot.addEventListener('click', function (e) {
    var el = e.target.closest('rect.op, line.m, line.mk, line.heal, line.violmark, rect.fault');
    pinned = el && el !== pinned ? el : null;
    show(el);
  });
  ticks();
})();
`
