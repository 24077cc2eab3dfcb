package sim_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

// latencyDraws is the sample size of the fidelity tests.
const latencyDraws = 100_000

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// drawDelays draws n one-way delays of m from a stream seeded with seed.
func drawDelays(m sim.LatencyModel, seed uint64, n int) []time.Duration {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = m.Delay(r, "a", "b")
	}
	return out
}

// meanSD returns the mean and standard deviation of ds, in milliseconds.
func meanSD(ds []time.Duration) (mean, sd float64) {
	for _, d := range ds {
		mean += msOf(d)
	}
	mean /= float64(len(ds))
	for _, d := range ds {
		sd += (msOf(d) - mean) * (msOf(d) - mean)
	}
	return mean, math.Sqrt(sd / float64(len(ds)-1))
}

// fixedSource makes rand.Rand.Float64 return u, for exact quantiles.
type fixedSource struct{ u float64 }

func (s fixedSource) Uint64() uint64 { return uint64(s.u * (1 << 53)) }

func TestEmpiricalInterpolatesTheTable(t *testing.T) {
	e := sim.CloudStudy()
	for _, pt := range e.Points()[:len(e.Points())-1] {
		r := rand.New(fixedSource{pt.P / 100})
		assert.InDelta(t, pt.RTT, e.RTT(r), float64(time.Microsecond), "p%v", pt.P)
	}
	// Halfway between p50 (3.8 ms) and p75 (4.7 ms), and just below p100.
	assert.InDelta(t, 4250*time.Microsecond, e.RTT(rand.New(fixedSource{0.625})), float64(time.Microsecond))
	assert.InDelta(t, 1242200*time.Microsecond, e.RTT(rand.New(fixedSource{math.Nextafter(1, 0)})), float64(time.Microsecond))
	assert.Equal(t, e.RTT(rand.New(fixedSource{0.625}))/2, e.Delay(rand.New(fixedSource{0.625}), "a", "b"), "one way is half a round trip")
}

// TestEmpiricalFidelity samples round trips from CloudStudy and compares
// them with the study's table, in two ways:
//
//   - rank: the share of samples at or below each table value is the
//     table's percentile, within four binomial standard errors;
//   - value: the sample percentile is within 5% of the table's value.
//
// The value check is made only where 100,000 samples can resolve 5%. Just
// above p75 and p99 the table's round trips climb steeply (p75 to p90:
// 3.8 ms per percentile point; p99 to p100: 1155 ms per point), so one
// standard error of the sample percentile's rank (0.14 points at p75,
// 0.03 at p99) is already 0.5 ms (11% of 4.7 ms) and 36 ms (41% of
// 87.3 ms). There only the rank is checked; TestEmpiricalInterpolatesTheTable
// checks the values exactly.
func TestEmpiricalFidelity(t *testing.T) {
	e := sim.CloudStudy()
	r := rand.New(rand.NewPCG(42, 1))
	rtts := make([]time.Duration, latencyDraws)
	for i := range rtts {
		rtts[i] = e.RTT(r)
	}
	oneWay := drawDelays(e, 43, latencyDraws)
	doubled := make([]time.Duration, len(oneWay))
	for i, d := range oneWay {
		doubled[i] = 2 * d
	}
	// NB: at this fixed seed every sampled round-trip percentile lands
	// within 1% of the table, so all six values are held to 5% here; at
	// other seeds p75 and p99 may stray past 5% by chance alone (see above),
	// which is why the doubled one-way draws check only the resolvable ones.
	t.Run("rtt", func(t *testing.T) { checkTable(t, e, rtts, true) })
	t.Run("one-way x2", func(t *testing.T) { checkTable(t, e, doubled, false) })

	// A simulated call's round trip is two independent one-way draws.
	calls := make([]time.Duration, latencyDraws/2)
	for i := range calls {
		calls[i] = oneWay[2*i] + oneWay[2*i+1]
	}
	slices.Sort(calls)
	t.Logf("call round trips (two one-way draws): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms",
		msOf(calls[len(calls)/2]), msOf(calls[len(calls)*9/10]), msOf(calls[len(calls)*99/100]))
}

// resolvable lists the percentiles whose values TestEmpiricalFidelity checks.
var resolvable = map[float64]bool{25: true, 50: true, 90: true, 95: true}

func checkTable(t *testing.T, e *sim.Empirical, samples []time.Duration, allValues bool) {
	samples = slices.Clone(samples)
	slices.Sort(samples)
	n := float64(len(samples))
	pts := e.Points()
	assert.GreaterOrEqual(t, samples[0], pts[0].RTT, "below the minimum")
	assert.LessOrEqual(t, samples[len(samples)-1], pts[len(pts)-1].RTT, "above the maximum")
	for _, pt := range pts[1 : len(pts)-1] {
		p := pt.P / 100
		at, _ := slices.BinarySearch(samples, pt.RTT+1) // samples <= pt.RTT
		share := float64(at) / n
		value := samples[int(math.Ceil(p*n))-1]
		relErr := msOf(value)/msOf(pt.RTT) - 1
		t.Logf("p%v: table %.2f ms, sampled %.3f ms (%+.2f%%); share at or below the table value %.4f",
			pt.P, msOf(pt.RTT), msOf(value), 100*relErr, share)
		assert.InDelta(t, p, share, 4*math.Sqrt(p*(1-p)/n), "rank of p%v", pt.P)
		if allValues || resolvable[pt.P] {
			assert.InDelta(t, 0, relErr, 0.05, "value of p%v: %v, want %v", pt.P, value, pt.RTT)
		}
	}
}

// truncatedNormal returns the mean and standard deviation of a normal
// distribution truncated below at low.
func truncatedNormal(mean, sd, low float64) (float64, float64) {
	a := (low - mean) / sd
	density := math.Exp(-a*a/2) / math.Sqrt(2*math.Pi)
	above := math.Erfc(a/math.Sqrt2) / 2
	l := density / above
	return mean + sd*l, sd * math.Sqrt(1+a*l-l*l)
}

func TestNormalFidelity(t *testing.T) {
	t.Run("cloud", func(t *testing.T) {
		c := sim.Cloud()
		assert.Equal(t, 1800*time.Microsecond, c.Mean)
		assert.Equal(t, 707107*time.Nanosecond, c.StdDev)
		assert.Equal(t, 550*time.Microsecond, c.Min)
		ds := drawDelays(c, 7, latencyDraws)
		assert.GreaterOrEqual(t, slices.Min(ds), c.Min, "nothing below the floor")
		mean, sd := meanSD(ds)
		wantMean, wantSD := truncatedNormal(msOf(c.Mean), msOf(c.StdDev), msOf(c.Min))
		t.Logf("one way: mean %.4f ms (truncated normal %.4f), sd %.4f ms (%.4f); parameters %v, %v",
			mean, wantMean, sd, wantSD, c.Mean, c.StdDev)
		assert.InEpsilon(t, wantMean, mean, 0.02)
		assert.InEpsilon(t, wantSD, sd, 0.02)

		calls := make([]time.Duration, len(ds)/2)
		for i := range calls {
			calls[i] = ds[2*i] + ds[2*i+1]
		}
		mean, sd = meanSD(calls)
		t.Logf("round trip (two one-way draws): mean %.4f ms, sd %.4f ms, min %.3f ms", mean, sd, msOf(slices.Min(calls)))
	})
	t.Run("untruncated", func(t *testing.T) {
		// A floor ten standard deviations down leaves the normal as it is.
		n := sim.Normal{Mean: 10 * time.Millisecond, StdDev: time.Millisecond}
		mean, sd := meanSD(drawDelays(n, 8, latencyDraws))
		assert.InEpsilon(t, 10, mean, 0.02)
		assert.InEpsilon(t, 1, sd, 0.02)
	})
	t.Run("degenerate", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 1))
		assert.Equal(t, 3*time.Millisecond, sim.Normal{Mean: 3 * time.Millisecond}.Delay(r, "a", "b"))
		assert.Equal(t, 5*time.Millisecond, sim.Normal{Mean: 3 * time.Millisecond, Min: 5 * time.Millisecond}.Delay(r, "a", "b"))
		far := sim.Normal{Mean: time.Millisecond, StdDev: time.Microsecond, Min: time.Second}
		assert.Equal(t, time.Second, far.Delay(r, "a", "b"), "resampling gives up at Min")
	})
}

func TestBimodalCloudWeights(t *testing.T) {
	ds := drawDelays(sim.BimodalCloud(), 9, latencyDraws)
	var normal, mid, tail int
	for _, d := range ds {
		switch {
		case d < 27500*time.Microsecond:
			normal++
		case d <= 45*time.Millisecond:
			mid++
		default:
			tail++
			assert.LessOrEqual(t, d, 625*time.Millisecond)
		}
	}
	n := float64(len(ds))
	t.Logf("shares: normal %.4f, 55-90 ms RTT %.4f, 90 ms-1.25 s RTT %.4f", float64(normal)/n, float64(mid)/n, float64(tail)/n)
	assert.InDelta(t, 0.87, float64(normal)/n, 0.01)
	assert.InDelta(t, 0.12, float64(mid)/n, 0.01)
	assert.InDelta(t, 0.01, float64(tail)/n, 0.01)
	assert.NotZero(t, tail)
}

func TestMixtureWeightsAreRelative(t *testing.T) {
	m := sim.Mixture{Components: []sim.Weighted{
		{Weight: 3, Model: sim.Constant(time.Millisecond)},
		{Weight: 0, Model: sim.Constant(2 * time.Millisecond)},
		{Weight: 1, Model: sim.Constant(3 * time.Millisecond)},
		{Weight: -1, Model: sim.Constant(4 * time.Millisecond)},
	}}
	count := map[time.Duration]int{}
	for _, d := range drawDelays(m, 10, latencyDraws) {
		count[d]++
	}
	assert.InDelta(t, 0.75, float64(count[time.Millisecond])/latencyDraws, 0.01)
	assert.InDelta(t, 0.25, float64(count[3*time.Millisecond])/latencyDraws, 0.01)
	assert.Len(t, count, 2, "components without a positive weight are never chosen")
	assert.Panics(t, func() { drawDelays(sim.Mixture{}, 1, 1) })
}

func TestUniformAndExponential(t *testing.T) {
	u := sim.Uniform{Min: time.Millisecond, Max: 10 * time.Millisecond}
	ds := drawDelays(u, 11, latencyDraws)
	assert.GreaterOrEqual(t, slices.Min(ds), u.Min)
	assert.LessOrEqual(t, slices.Max(ds), u.Max)
	mean, _ := meanSD(ds)
	assert.InEpsilon(t, 5.5, mean, 0.02)

	e := sim.Exponential{Min: 5 * time.Millisecond, Mean: 50 * time.Millisecond}
	ds = drawDelays(e, 12, latencyDraws)
	assert.GreaterOrEqual(t, slices.Min(ds), e.Min)
	mean, sd := meanSD(ds)
	assert.InEpsilon(t, 50, mean, 0.02)
	assert.InEpsilon(t, 45, sd, 0.02, "the excess over Min is exponential")

	r := rand.New(rand.NewPCG(1, 1))
	assert.Equal(t, 7*time.Millisecond, sim.Uniform{Min: 7 * time.Millisecond, Max: time.Millisecond}.Delay(r, "a", "b"))
	assert.Equal(t, 7*time.Millisecond, sim.Exponential{Min: 7 * time.Millisecond, Mean: time.Millisecond}.Delay(r, "a", "b"))
}

// namedModel is a model with a short name for subtests and benchmarks.
type namedModel struct {
	name string
	m    sim.LatencyModel
}

// latencyModels returns one of every model, for the determinism test and
// the benchmarks.
func latencyModels(clock func() time.Duration) []namedModel {
	return []namedModel{
		{"constant", sim.Constant(time.Millisecond)},
		{"cloud", sim.Cloud()},
		{"study", sim.CloudStudy()},
		{"bimodal", sim.BimodalCloud()},
		{"uniform", sim.Uniform{Min: time.Millisecond, Max: 10 * time.Millisecond}},
		{"exp", sim.Exponential{Min: 5 * time.Millisecond, Mean: 50 * time.Millisecond}},
		{"perlink", sim.PerLink{Default: sim.Cloud(), Links: map[sim.Link]sim.LatencyModel{{From: "a", To: "b"}: sim.CloudStudy()}}},
		{"schedule", sim.Schedule{Clock: clock, Phases: []sim.Phase{{Until: time.Minute, Model: sim.Cloud()}, {Model: sim.BimodalCloud()}}}},
		{"outage", sim.Outage(clock, time.Minute, time.Hour, sim.Cloud())},
	}
}

func TestLatencyDeterministic(t *testing.T) {
	now := 30 * time.Second
	for _, nm := range latencyModels(func() time.Duration { return now }) {
		t.Run(nm.name, func(t *testing.T) {
			a := drawDelays(nm.m, 5, 1000)
			assert.Equal(t, a, drawDelays(nm.m, 5, 1000), "same seed, same delays")
			if _, constant := nm.m.(sim.Constant); !constant {
				assert.NotEqual(t, a, drawDelays(nm.m, 6, 1000), "another seed, other delays")
			}
		})
	}
}

func TestPerLinkOverridesDirectedLinks(t *testing.T) {
	p := sim.PerLink{
		Default: sim.Constant(time.Millisecond),
		Links: map[sim.Link]sim.LatencyModel{
			{From: "a", To: "b"}: sim.Constant(5 * time.Millisecond),
			{From: "c", To: "a"}: sim.Constant(7 * time.Millisecond),
		},
	}
	r := rand.New(rand.NewPCG(1, 1))
	assert.Equal(t, 5*time.Millisecond, p.Delay(r, "a", "b"))
	assert.Equal(t, time.Millisecond, p.Delay(r, "b", "a"), "the reverse link is not overridden")
	assert.Equal(t, 7*time.Millisecond, p.Delay(r, "c", "a"))
	assert.Equal(t, time.Millisecond, p.Delay(r, "a", "c"))
	assert.Equal(t, "perlink(default constant:1ms; a->b constant:5ms; c->a constant:7ms)", p.String())

	p.Default = nil
	assert.Equal(t, 5*time.Millisecond, p.Delay(r, "a", "b"))
	assert.Panics(t, func() { p.Delay(r, "b", "a") })
}

func TestScheduleSwitchesPhases(t *testing.T) {
	var now time.Duration
	s := sim.Schedule{
		Clock: func() time.Duration { return now },
		Phases: []sim.Phase{
			{Until: time.Minute, Model: sim.Constant(time.Millisecond)},
			{Until: 2 * time.Minute, Model: sim.Constant(2 * time.Millisecond)},
			{Until: 3 * time.Minute, Model: sim.Constant(3 * time.Millisecond)},
		},
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, tt := range []struct {
		now  time.Duration
		want time.Duration
	}{
		{0, time.Millisecond},
		{time.Minute - 1, time.Millisecond},
		{time.Minute, 2 * time.Millisecond},
		{2*time.Minute + time.Second, 3 * time.Millisecond},
		{3 * time.Minute, 3 * time.Millisecond},
		{10 * time.Hour, 3 * time.Millisecond},
	} {
		now = tt.now
		assert.Equal(t, tt.want, s.Delay(r, "a", "b"), "at %v", tt.now)
		assert.Equal(t, sim.Constant(tt.want), s.At(tt.now), "at %v", tt.now)
	}
	assert.Equal(t, "schedule(constant:1ms until 1m0s; constant:2ms until 2m0s; then constant:3ms)", s.String())
	assert.Panics(t, func() { sim.Schedule{Clock: s.Clock}.Delay(r, "a", "b") })
	assert.Panics(t, func() { sim.Schedule{Phases: s.Phases}.Delay(r, "a", "b") })
}

func TestOutageHoldsMessagesUntilItEnds(t *testing.T) {
	var now time.Duration
	o := sim.Outage(func() time.Duration { return now }, 10*time.Minute, 2*time.Hour+10*time.Minute, sim.Constant(time.Millisecond))
	r := rand.New(rand.NewPCG(1, 1))
	for _, tt := range []struct {
		now  time.Duration
		want time.Duration
	}{
		{0, time.Millisecond},
		{10*time.Minute - 1, time.Millisecond},
		{10 * time.Minute, 2*time.Hour + time.Millisecond},
		{time.Hour, time.Hour + 10*time.Minute + time.Millisecond},
		{2*time.Hour + 10*time.Minute, time.Millisecond},
	} {
		now = tt.now
		assert.Equal(t, tt.want, o.Delay(r, "a", "b"), "sent at %v", tt.now)
	}
	assert.Equal(t, "constant:1ms+outage:10m0s-2h10m0s", fmt.Sprint(o))
	assert.Panics(t, func() { sim.Outage(nil, 0, time.Second, sim.Cloud()) })
}

// latencyOK answers every request.
type latencyOK struct{}

func (latencyOK) Handle(*transport.Request) *transport.Response { return &transport.Response{} }

func TestOutageOnTheNetwork(t *testing.T) {
	s := sim.NewScheduler(1)
	defer s.Close()
	milli := time.Millisecond
	n := sim.NewNetwork(s, sim.PerLink{
		Default: sim.Constant(milli),
		Links: map[sim.Link]sim.LatencyModel{
			{From: "c", To: "u"}: sim.Outage(s.Elapsed, 10*milli, time.Second, sim.Constant(milli)),
		},
	})
	n.AddNode("u", latencyOK{})
	c := n.Caller("c")
	bg := context.Background()
	s.Go("client", func() {
		_, err := c.Call(bg, "u", &transport.Request{Op: transport.OpRead})
		require.NoError(t, err)
		assert.Equal(t, 2*milli, s.Elapsed(), "before the outage")
		require.NoError(t, s.Sleep(bg, 18*milli))
		_, err = c.Call(bg, "u", &transport.Request{Op: transport.OpRead})
		require.NoError(t, err)
		assert.Equal(t, time.Second+2*milli, s.Elapsed(), "sent at 20ms, held until 1s")
	})
	require.NoError(t, s.Run())
}

func TestParseLatency(t *testing.T) {
	var now time.Duration
	clock := func() time.Duration { return now }
	for _, tt := range []struct {
		name, spec string
		want       string // the model's String
		mixture    bool   // whose String is not a spec
	}{
		{name: "constant", spec: "constant:2ms", want: "constant:2ms"},
		{name: "cloud", spec: "cloud", want: sim.Cloud().String()},
		{name: "normal is cloud", spec: "normal", want: sim.Cloud().String()},
		{name: "normal", spec: "normal:mean=2ms,sd=500us", want: "normal:mean=2ms,sd=500µs,min=0s"},
		{name: "study", spec: "study", want: sim.CloudStudy().String()},
		{name: "empirical", spec: "empirical", want: sim.CloudStudy().String()},
		{name: "empirical table", spec: "empirical:p0=1ms,p50=3ms,p99.9=8ms,p100=9ms", want: "empirical:p0=1ms,p50=3ms,p99.9=8ms,p100=9ms"},
		{name: "bimodal", spec: "bimodal", want: sim.BimodalCloud().String(), mixture: true},
		{name: "exp", spec: "exp:min=5ms,mean=50ms", want: "exp:min=5ms,mean=50ms"},
		{name: "exp in any order", spec: "exp:mean=50ms,min=5ms", want: "exp:min=5ms,mean=50ms"},
		{name: "uniform", spec: "uniform:1ms-10ms", want: "uniform:1ms-10ms"},
		{name: "spaces and case", spec: " Uniform:1ms - 10ms ", want: "uniform:1ms-10ms"},
		{name: "outage", spec: "cloud+outage:10m-2h10m", want: sim.Cloud().String() + "+outage:10m0s-2h10m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := sim.ParseLatency(tt.spec, clock)
			require.NoError(t, err)
			assert.Equal(t, tt.want, fmt.Sprint(m))
			if tt.mixture {
				return
			}
			again, err := sim.ParseLatency(fmt.Sprint(m), clock)
			require.NoError(t, err, "String is a spec")
			assert.Equal(t, tt.want, fmt.Sprint(again))
		})
	}
}

func TestParseLatencyErrors(t *testing.T) {
	clock := func() time.Duration { return 0 }
	for _, tt := range []struct {
		name, spec string
		clock      func() time.Duration
		want       string // in the error
	}{
		{name: "empty", spec: "", want: "empty spec"},
		{name: "unknown", spec: "gamma:1ms", want: `unknown model "gamma"`},
		{name: "arguments to cloud", spec: "cloud:2ms", want: "cloud takes no parameters"},
		{name: "no duration", spec: "constant", want: `duration ""`},
		{name: "bad duration", spec: "constant:2", want: `duration "2"`},
		{name: "negative", spec: "constant:-1ms", want: "negative"},
		{name: "uniform backwards", spec: "uniform:5ms-1ms", want: "below min"},
		{name: "uniform one bound", spec: "uniform:5ms", want: "want lo-hi"},
		{name: "exp missing mean", spec: "exp:min=5ms", want: `missing parameter "mean"`},
		{name: "exp mean below min", spec: "exp:min=5ms,mean=1ms", want: "below min"},
		{name: "exp unknown key", spec: "exp:min=5ms,mean=50ms,max=1s", want: `unknown parameter "max"`},
		{name: "exp twice", spec: "exp:min=5ms,min=6ms,mean=50ms", want: "given twice"},
		{name: "exp no equals", spec: "exp:min", want: "want key=duration"},
		{name: "normal missing sd", spec: "normal:mean=2ms", want: `missing parameter "sd"`},
		{name: "table without max", spec: "empirical:p0=1ms,p50=2ms", want: "want p100"},
		{name: "table without min", spec: "empirical:p10=1ms,p100=2ms", want: "want p0"},
		{name: "table out of order", spec: "empirical:p0=1ms,p50=3ms,p40=4ms,p100=5ms", want: "percentiles must increase"},
		{name: "table decreasing", spec: "empirical:p0=1ms,p50=3ms,p100=2ms", want: "must not decrease"},
		{name: "table bad key", spec: "empirical:q0=1ms,p100=2ms", want: "want pN=duration"},
		{name: "table bad percentile", spec: "empirical:pNaN=1ms,p100=2ms", want: "not a number"},
		{name: "outage backwards", spec: "cloud+outage:2h-1h", want: "not after its start"},
		{name: "outage bad range", spec: "cloud+outage:1h", want: "want lo-hi"},
		{name: "outage without clock", spec: "cloud+outage:1h-2h", want: "needs a clock"},
		{name: "outage of a bad model", spec: "fast+outage:1h-2h", want: `unknown model "fast"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := clock
			if tt.name == "outage without clock" {
				c = nil
			}
			_, err := sim.ParseLatency(tt.spec, c)
			require.ErrorIs(t, err, sim.ErrBadLatency)
			assert.ErrorContains(t, err, tt.want)
			assert.ErrorContains(t, err, fmt.Sprintf("%q", tt.spec), "the error names the spec")
		})
	}
}

func TestNewEmpiricalErrors(t *testing.T) {
	milli := time.Millisecond
	for _, tt := range []struct {
		name   string
		points []sim.Percentile
		want   string
	}{
		{name: "empty", want: "at least p0 and p100"},
		{name: "one point", points: []sim.Percentile{{0, milli}}, want: "at least p0 and p100"},
		{name: "no min", points: []sim.Percentile{{1, milli}, {100, 2 * milli}}, want: "want p0"},
		{name: "no max", points: []sim.Percentile{{0, milli}, {99, 2 * milli}}, want: "want p100"},
		{name: "repeated percentile", points: []sim.Percentile{{0, milli}, {50, milli}, {50, 2 * milli}, {100, 3 * milli}}, want: "percentiles must increase"},
		{name: "NaN percentile", points: []sim.Percentile{{0, milli}, {math.NaN(), milli}, {100, 3 * milli}}, want: "percentiles must increase"},
		{name: "decreasing", points: []sim.Percentile{{0, 2 * milli}, {100, milli}}, want: "must not decrease"},
		{name: "negative", points: []sim.Percentile{{0, -milli}, {100, milli}}, want: "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sim.NewEmpirical(tt.points)
			require.ErrorIs(t, err, sim.ErrBadLatency)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	pts := []sim.Percentile{{0, milli}, {50, milli}, {100, 2 * milli}}
	e, err := sim.NewEmpirical(pts)
	require.NoError(t, err, "a flat stretch is allowed")
	pts[1].RTT = 0
	assert.Equal(t, milli, e.Points()[1].RTT, "the model keeps its own copy")
}

func BenchmarkLatency(b *testing.B) {
	clock := func() time.Duration { return 30 * time.Second }
	for _, nm := range latencyModels(clock) {
		b.Run(nm.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				nm.m.Delay(r, "a", "b")
			}
		})
	}
}
