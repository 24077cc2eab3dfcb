package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corfulog/corfu/transport"
)

// Latency models beyond Constant. Every model here is a plain value, draws
// only from the *rand.Rand it is given (the network's stream) and reads
// time, if at all, only from a clock it was given (the scheduler's
// Elapsed), so a seed replays the same delays. Delays are one-way: the
// network draws one for a request and another for its response. No model
// changes after it is built, so one may be shared; Delay is called by one
// event at a time, like everything a Scheduler runs.

// ErrBadLatency is wrapped by the errors of NewEmpirical and ParseLatency.
var ErrBadLatency = errors.New("sim: bad latency model")

// String returns the model as ParseLatency accepts it.
func (c Constant) String() string { return "constant:" + time.Duration(c).String() }

// toDuration converts nanoseconds to a Duration, rounding, and saturates
// instead of overflowing.
func toDuration(ns float64) time.Duration {
	switch {
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(math.Round(ns))
}

// maxNormalDraws bounds the resampling of one Normal delay.
const maxNormalDraws = 100

// Normal is a LatencyModel with normally distributed delays truncated at
// Min: a draw below Min is thrown away and drawn again. Resampling keeps
// the shape of the distribution above Min, where clamping would pile every
// low draw onto Min; the price is that the draws' mean is a little above
// Mean and their spread a little below StdDev (see Cloud). If Min is so far
// above Mean that maxNormalDraws (100) draws in a row fall below it, the
// delay is Min.
//
// Mean and StdDev are those of the normal distribution before truncation.
// The zero Min truncates at zero, so no delay is negative. A StdDev of zero
// or less gives Mean (or Min, if higher) without drawing.
type Normal struct {
	Mean, StdDev, Min time.Duration
}

// Delay draws a delay.
func (n Normal) Delay(r *rand.Rand, _, _ transport.NodeID) time.Duration {
	if n.StdDev <= 0 {
		return max(n.Mean, n.Min)
	}
	mean, sd, low := float64(n.Mean), float64(n.StdDev), float64(n.Min)
	for range maxNormalDraws {
		if d := mean + sd*r.NormFloat64(); d >= low {
			return toDuration(d)
		}
	}
	return n.Min
}

// String returns the model as ParseLatency accepts it.
func (n Normal) String() string {
	return fmt.Sprintf("normal:mean=%v,sd=%v,min=%v", n.Mean, n.StdDev, n.Min)
}

// Cloud returns the Normal model of one-way delays inside a cloud region
// (fault catalog N1), fitted to a study whose round trips were close to a
// normal with mean 3.6 ms and standard deviation 1 ms, never below 1.1 ms.
//
// A round trip is two independent one-way delays, so the conversion halves
// the mean (1.8 ms) and the variance (0.5 ms², a standard deviation of
// 1/√2 ≈ 0.707 ms), and the floor is half the smallest round trip
// (0.55 ms). The floor sits 1.77 standard deviations below the mean, so
// 3.9% of raw draws are redrawn, and the one-way delays have mean
// ≈ 1.86 ms and standard deviation ≈ 0.65 ms; a round trip, the sum of two,
// has mean ≈ 3.72 ms and standard deviation ≈ 0.92 ms.
func Cloud() Normal {
	return Normal{
		Mean:   1800 * time.Microsecond,
		StdDev: toDuration(float64(time.Millisecond) / math.Sqrt2),
		Min:    550 * time.Microsecond,
	}
}

// Percentile is one point of a table of round-trip times: P percent of
// round trips took RTT or less. P is in [0, 100].
type Percentile struct {
	P   float64
	RTT time.Duration
}

// Empirical is a LatencyModel that follows a measured table of round-trip
// times. A draw picks a uniform percentile u in [0, 100), finds the two
// table points around it and interpolates linearly between their RTTs: the
// model's distribution is piecewise uniform between the table's points.
// Between two points far apart (p75 and p90 of CloudStudy) it therefore
// spreads their share of the draws evenly, whatever shape the measured
// data had there.
//
// The one-way delay is half a drawn round trip. The network draws the two
// halves of a call independently, so a simulated call's round trip is the
// sum of two halves, which is not distributed as the table: a call meets a
// tail delay about twice as often as one round trip of the table does. RTT
// draws a round trip that follows the table.
//
// An Empirical is made by NewEmpirical and never changes; it may be shared.
type Empirical struct {
	points []Percentile
}

// NewEmpirical returns the model of the table points. The table must start
// at percentile 0 (the smallest round trip) and end at 100 (the largest),
// with percentiles strictly increasing and round trips non-negative and
// never decreasing. The error, if any, wraps ErrBadLatency.
func NewEmpirical(points []Percentile) (*Empirical, error) {
	e, err := newEmpirical(points)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLatency, err)
	}
	return e, nil
}

func newEmpirical(points []Percentile) (*Empirical, error) {
	if len(points) < 2 {
		return nil, fmt.Errorf("empirical table has %d points, want at least p0 and p100", len(points))
	}
	if p := points[0].P; p != 0 {
		return nil, fmt.Errorf("empirical table starts at p%v, want p0 (the minimum)", p)
	}
	if p := points[len(points)-1].P; p != 100 {
		return nil, fmt.Errorf("empirical table ends at p%v, want p100 (the maximum)", p)
	}
	for i, pt := range points {
		if pt.RTT < 0 {
			return nil, fmt.Errorf("empirical table: p%v is negative (%v)", pt.P, pt.RTT)
		}
		if i == 0 {
			continue
		}
		prev := points[i-1]
		if !(pt.P > prev.P) { // also rejects NaN
			return nil, fmt.Errorf("empirical table: p%v follows p%v; percentiles must increase", pt.P, prev.P)
		}
		if pt.RTT < prev.RTT {
			return nil, fmt.Errorf("empirical table: p%v (%v) is below p%v (%v); round trips must not decrease", pt.P, pt.RTT, prev.P, prev.RTT)
		}
	}
	return &Empirical{points: slices.Clone(points)}, nil
}

// CloudStudy returns the Empirical model of the round trips a cloud pilot
// study measured: min 1.1 ms, p25 3.0, p50 3.8, p75 4.7, p90 61.4,
// p95 69.7, p99 87.3 and max 1242.2 ms.
func CloudStudy() *Empirical {
	ms := func(v float64) time.Duration { return toDuration(v * float64(time.Millisecond)) }
	e, err := NewEmpirical([]Percentile{
		{0, ms(1.1)},
		{25, ms(3.0)},
		{50, ms(3.8)},
		{75, ms(4.7)},
		{90, ms(61.4)},
		{95, ms(69.7)},
		{99, ms(87.3)},
		{100, ms(1242.2)},
	})
	if err != nil {
		panic(err) // the table above is valid
	}
	return e
}

// Points returns a copy of the model's table.
func (e *Empirical) Points() []Percentile { return slices.Clone(e.points) }

// RTT draws a round trip that follows the table.
func (e *Empirical) RTT(r *rand.Rand) time.Duration {
	return e.quantile(100 * r.Float64())
}

// quantile interpolates the table at percentile u in [0, 100).
func (e *Empirical) quantile(u float64) time.Duration {
	pts := e.points
	// The first point above u; pts[0].P = 0 <= u < 100 = pts[last].P.
	i, _ := slices.BinarySearchFunc(pts, u, func(pt Percentile, u float64) int {
		if pt.P <= u {
			return -1
		}
		return 1
	})
	i = min(max(i, 1), len(pts)-1)
	lo, hi := pts[i-1], pts[i]
	f := (u - lo.P) / (hi.P - lo.P)
	return toDuration(float64(lo.RTT) + f*float64(hi.RTT-lo.RTT))
}

// Delay draws a one-way delay: half a round trip drawn by RTT.
func (e *Empirical) Delay(r *rand.Rand, _, _ transport.NodeID) time.Duration {
	return e.RTT(r) / 2
}

// String returns the model as ParseLatency accepts it; the values are
// round trips.
func (e *Empirical) String() string {
	var b strings.Builder
	b.WriteString("empirical:")
	for i, pt := range e.points {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "p%s=%v", strconv.FormatFloat(pt.P, 'g', -1, 64), pt.RTT)
	}
	return b.String()
}

// Uniform is a LatencyModel with delays uniform in [Min, Max], to the
// nanosecond. If Max is not above Min the delay is Min.
type Uniform struct {
	Min, Max time.Duration
}

// Delay draws a delay.
func (u Uniform) Delay(r *rand.Rand, _, _ transport.NodeID) time.Duration {
	if u.Max <= u.Min {
		return u.Min
	}
	return u.Min + time.Duration(r.Uint64N(uint64(u.Max-u.Min)+1))
}

// String returns the model as ParseLatency accepts it.
func (u Uniform) String() string { return fmt.Sprintf("uniform:%v-%v", u.Min, u.Max) }

// Exponential is a LatencyModel with delays of at least Min whose excess
// over Min is exponentially distributed (fault catalog N3). Mean is the mean
// delay, Min included, so the excess has mean Mean-Min; if Mean is not
// above Min the delay is Min.
type Exponential struct {
	Min, Mean time.Duration
}

// Delay draws a delay.
func (e Exponential) Delay(r *rand.Rand, _, _ transport.NodeID) time.Duration {
	if e.Mean <= e.Min {
		return e.Min
	}
	return e.Min + toDuration(r.ExpFloat64()*float64(e.Mean-e.Min))
}

// String returns the model as ParseLatency accepts it.
func (e Exponential) String() string { return fmt.Sprintf("exp:min=%v,mean=%v", e.Min, e.Mean) }

// Weighted is one component of a Mixture.
type Weighted struct {
	Weight float64 // relative to the other components' weights
	Model  LatencyModel
}

// Mixture is a LatencyModel that draws each delay from one of its
// components, chosen with probability proportional to its Weight. Weights
// need not sum to 1; a component whose weight is not positive is never
// chosen. Delay panics if no weight is positive.
type Mixture struct {
	Components []Weighted
}

// Delay picks a component, then draws a delay from it.
func (m Mixture) Delay(r *rand.Rand, from, to transport.NodeID) time.Duration {
	total := 0.0
	last := -1
	for i, c := range m.Components {
		if c.Weight > 0 {
			total += c.Weight
			last = i
		}
	}
	if last < 0 {
		panic("sim: Mixture has no component with a positive weight")
	}
	u := r.Float64() * total
	for _, c := range m.Components[:last] {
		if c.Weight <= 0 {
			continue
		}
		if u < c.Weight {
			return c.Model.Delay(r, from, to)
		}
		u -= c.Weight
	}
	// Rounding may leave u just above the last weight; it is the last one's.
	return m.Components[last].Model.Delay(r, from, to)
}

// String describes the mixture for repros: each weight, then its model.
func (m Mixture) String() string {
	parts := make([]string, len(m.Components))
	for i, c := range m.Components {
		parts[i] = fmt.Sprintf("%s %v", strconv.FormatFloat(c.Weight, 'g', -1, 64), c.Model)
	}
	return "mixture(" + strings.Join(parts, "; ") + ")"
}

// BimodalCloud returns the Mixture of fault catalog N2, with round trips
// as the cloud study saw them: 87% of delays from Cloud, 12% from round
// trips uniform in 55-90 ms and 1% from round trips uniform in
// 90 ms-1.25 s. The uniform components are given as one-way delays, half
// those round trips: 27.5-45 ms and 45-625 ms.
func BimodalCloud() Mixture {
	return Mixture{Components: []Weighted{
		{Weight: 0.87, Model: Cloud()},
		{Weight: 0.12, Model: Uniform{Min: 27500 * time.Microsecond, Max: 45 * time.Millisecond}},
		{Weight: 0.01, Model: Uniform{Min: 45 * time.Millisecond, Max: 625 * time.Millisecond}},
	}}
}

// Link is a directed link, from one node to another.
type Link struct {
	From, To transport.NodeID
}

// String returns "from->to".
func (l Link) String() string { return string(l.From) + "->" + string(l.To) }

// PerLink is a LatencyModel that gives some directed links a model of their
// own: a message from a to b takes the delay of Links[Link{a, b}] if that
// is set, and of Default otherwise. The link b->a is separate from a->b.
// Delay panics if it needs Default and Default is nil.
type PerLink struct {
	Default LatencyModel
	Links   map[Link]LatencyModel
}

// Delay draws a delay from the link's model.
func (p PerLink) Delay(r *rand.Rand, from, to transport.NodeID) time.Duration {
	if m := p.Links[Link{From: from, To: to}]; m != nil {
		return m.Delay(r, from, to)
	}
	if p.Default == nil {
		panic(fmt.Sprintf("sim: PerLink has no model for %s->%s and no Default", from, to))
	}
	return p.Default.Delay(r, from, to)
}

// String describes the default and the overrides, links in sorted order.
func (p PerLink) String() string {
	links := make([]Link, 0, len(p.Links))
	for l := range p.Links {
		links = append(links, l)
	}
	slices.SortFunc(links, func(a, b Link) int {
		if c := strings.Compare(string(a.From), string(b.From)); c != 0 {
			return c
		}
		return strings.Compare(string(a.To), string(b.To))
	})
	parts := []string{fmt.Sprintf("default %v", p.Default)}
	for _, l := range links {
		parts = append(parts, fmt.Sprintf("%v %v", l, p.Links[l]))
	}
	return "perlink(" + strings.Join(parts, "; ") + ")"
}

// Phase is one stretch of a Schedule: Model applies until the virtual time
// Until.
type Phase struct {
	Until time.Duration
	Model LatencyModel
}

// Schedule is a LatencyModel that changes over virtual time. Clock gives
// the virtual time since the start of the run (pass the scheduler's
// Elapsed). A message takes the delay of the first phase whose Until is
// after the time it is sent, and of the last phase if no Until is: the last
// phase goes on after the end, and its own Until is never consulted. A
// model chosen at sending holds for the whole message, so a slow message
// sent in one phase may arrive after faster ones sent in the next.
//
// Delay and At panic if Clock is nil or there are no phases.
type Schedule struct {
	Clock  func() time.Duration
	Phases []Phase
}

// At returns the model that applies at virtual time now.
func (s Schedule) At(now time.Duration) LatencyModel {
	if len(s.Phases) == 0 {
		panic("sim: Schedule has no phases")
	}
	for _, ph := range s.Phases {
		if now < ph.Until {
			return ph.Model
		}
	}
	return s.Phases[len(s.Phases)-1].Model
}

// Delay draws a delay from the model of the current phase.
func (s Schedule) Delay(r *rand.Rand, from, to transport.NodeID) time.Duration {
	if s.Clock == nil {
		panic("sim: Schedule has no Clock")
	}
	return s.At(s.Clock()).Delay(r, from, to)
}

// String describes the phases in order, each with its end but the last.
func (s Schedule) String() string {
	parts := make([]string, len(s.Phases))
	for i, ph := range s.Phases {
		if i == len(s.Phases)-1 {
			parts[i] = fmt.Sprintf("then %v", ph.Model)
		} else {
			parts[i] = fmt.Sprintf("%v until %v", ph.Model, ph.Until)
		}
	}
	return "schedule(" + strings.Join(parts, "; ") + ")"
}

// outage is the model Outage returns.
type outage struct {
	clock       func() time.Duration
	from, until time.Duration
	inner       LatencyModel
}

// Outage returns a model whose links are silent in the virtual-time window
// [from, until): a message sent in it is held and delivered after the
// window ends, its delay from inner added to the wait, so the held
// messages arrive as a burst just after until, in the order of their
// inner delays. Outside the window it is inner. clock gives the virtual
// time since the start of the run (the scheduler's Elapsed). A message sent
// before the window is unaffected even if it would arrive in it, and
// inner's delay is drawn for every message, so the window does not shift
// the random draws of other messages.
//
// This is a link that queues traffic, not one that loses it: no message is
// dropped. Dropping in a window is a decision for a Policy, which can drop;
// a LatencyModel only delays. Wrap Outage in a PerLink to silence one
// node's links, as for the two-hour silent gap the cloud study saw:
//
//	Outage(s.Elapsed, 10*time.Minute, 2*time.Hour+10*time.Minute, Cloud())
//
// Outage panics if clock or inner is nil. If until is not after from the
// window is empty.
func Outage(clock func() time.Duration, from, until time.Duration, inner LatencyModel) LatencyModel {
	if clock == nil || inner == nil {
		panic("sim: Outage needs a clock and an inner model")
	}
	return outage{clock: clock, from: from, until: until, inner: inner}
}

// Delay draws the inner delay and, inside the window, adds the wait until
// its end.
func (o outage) Delay(r *rand.Rand, from, to transport.NodeID) time.Duration {
	d := o.inner.Delay(r, from, to)
	if now := o.clock(); now >= o.from && now < o.until {
		d += o.until - now
	}
	return d
}

// String returns the model as ParseLatency accepts it, if inner's String
// is.
func (o outage) String() string {
	return fmt.Sprintf("%v+outage:%v-%v", o.inner, o.from, o.until)
}

// ParseLatency parses a latency model from a command line:
//
//	constant:2ms                    Constant
//	cloud, normal                   Cloud
//	normal:mean=2ms,sd=1ms,min=1ms  Normal (min defaults to 0)
//	empirical, study                CloudStudy
//	empirical:p0=1ms,p50=3ms,p100=9ms
//	                                NewEmpirical, the values round trips
//	bimodal                         BimodalCloud
//	exp:min=5ms,mean=50ms           Exponential
//	uniform:1ms-10ms                Uniform
//
// Durations are as time.ParseDuration reads them and must not be negative.
// Any of these may be followed by "+outage:FROM-UNTIL", virtual times since
// the start of the run ("cloud+outage:10m-2h10m"), for Outage with clock;
// clock may be nil if no spec uses it. The String of each model other than
// Mixture, PerLink and Schedule is a spec ParseLatency accepts. The error,
// if any, wraps ErrBadLatency.
func ParseLatency(spec string, clock func() time.Duration) (LatencyModel, error) {
	m, err := parseLatency(strings.TrimSpace(spec), clock)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadLatency, spec, err)
	}
	return m, nil
}

func parseLatency(spec string, clock func() time.Duration) (LatencyModel, error) {
	base, window, hasOutage := strings.Cut(spec, "+outage:")
	m, err := parseModel(base)
	if err != nil || !hasOutage {
		return m, err
	}
	from, until, err := parseRange(window)
	if err != nil {
		return nil, fmt.Errorf("outage: %w", err)
	}
	if until <= from {
		return nil, fmt.Errorf("outage ends at %v, not after its start %v", until, from)
	}
	if clock == nil {
		return nil, errors.New("an outage needs a clock")
	}
	return Outage(clock, from, until, m), nil
}

const latencyModels = "constant, cloud, normal, empirical, study, bimodal, exp or uniform"

// parseModel parses a spec without its outage.
func parseModel(spec string) (LatencyModel, error) {
	name, args, hasArgs := strings.Cut(spec, ":")
	name = strings.ToLower(strings.TrimSpace(name))
	noArgs := func(m LatencyModel) (LatencyModel, error) {
		if hasArgs {
			return nil, fmt.Errorf("%s takes no parameters", name)
		}
		return m, nil
	}
	switch name {
	case "cloud":
		return noArgs(Cloud())
	case "study":
		return noArgs(CloudStudy())
	case "bimodal":
		return noArgs(BimodalCloud())
	case "constant":
		d, err := parseDuration(args)
		if err != nil {
			return nil, err
		}
		return Constant(d), nil
	case "uniform":
		lo, hi, err := parseRange(args)
		if err != nil {
			return nil, err
		}
		if hi < lo {
			return nil, fmt.Errorf("uniform: max %v is below min %v", hi, lo)
		}
		return Uniform{Min: lo, Max: hi}, nil
	case "exp":
		kv, err := parseParams(args, "min", "mean")
		if err != nil {
			return nil, err
		}
		if err := requireParams(kv, "min", "mean"); err != nil {
			return nil, err
		}
		e := Exponential{Min: kv["min"], Mean: kv["mean"]}
		if e.Mean < e.Min {
			return nil, fmt.Errorf("exp: mean %v is below min %v", e.Mean, e.Min)
		}
		return e, nil
	case "normal":
		if !hasArgs {
			return Cloud(), nil
		}
		kv, err := parseParams(args, "mean", "sd", "min")
		if err != nil {
			return nil, err
		}
		if err := requireParams(kv, "mean", "sd"); err != nil {
			return nil, err
		}
		return Normal{Mean: kv["mean"], StdDev: kv["sd"], Min: kv["min"]}, nil
	case "empirical":
		if !hasArgs {
			return CloudStudy(), nil
		}
		return parseTable(args)
	case "":
		return nil, fmt.Errorf("empty spec; want one of %s", latencyModels)
	}
	return nil, fmt.Errorf("unknown model %q; want one of %s", name, latencyModels)
}

// parseDuration parses a non-negative duration.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration such as 2ms", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %v is negative", d)
	}
	return d, nil
}

// parseRange parses "lo-hi".
func parseRange(s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("range %q: want lo-hi, such as 1ms-10ms", s)
	}
	if lo, err = parseDuration(a); err != nil {
		return 0, 0, err
	}
	if hi, err = parseDuration(b); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}

// parseParams parses "k=d,k=d" with keys from allowed, each at most once.
// The result is only looked up, never iterated.
func parseParams(s string, allowed ...string) (map[string]time.Duration, error) {
	kv := make(map[string]time.Duration)
	for field := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok {
			return nil, fmt.Errorf("parameter %q: want key=duration", field)
		}
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("unknown parameter %q; want %s", k, strings.Join(allowed, ", "))
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("parameter %q given twice", k)
		}
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		kv[k] = d
	}
	return kv, nil
}

// requireParams reports the first of keys missing from kv.
func requireParams(kv map[string]time.Duration, keys ...string) error {
	for _, k := range keys {
		if _, ok := kv[k]; !ok {
			return fmt.Errorf("missing parameter %q", k)
		}
	}
	return nil
}

// parseTable parses "p0=d,p25=d,...,p100=d" into an Empirical.
func parseTable(s string) (*Empirical, error) {
	var pts []Percentile
	for field := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		num, isP := strings.CutPrefix(k, "p")
		if !ok || !isP {
			return nil, fmt.Errorf("table entry %q: want pN=duration, such as p50=3.8ms", field)
		}
		p, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
			return nil, fmt.Errorf("table entry %q: percentile %q is not a number", field, num)
		}
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		pts = append(pts, Percentile{P: p, RTT: d})
	}
	return newEmpirical(pts)
}
