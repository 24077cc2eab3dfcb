package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Scenario is what a sweep puts on top of each seed's Swarm options, the
// same for every seed: the fault catalog (or part of it), the disk mode,
// the failure detector, AppendAsync's bursts, the network's latency and
// the fault phase's length. Its zero value changes nothing: Options(seed)
// is then Swarm(seed). The fields are the scenario flags of `corfu sim`,
// spelt as the flags take them, so that a run the command found replays
// in a Go test:
//
//	corfu sim --seed 42 --faults all --disk durable
//
// is
//
//	sim.Run(sim.Scenario{Faults: "all", Disk: sim.DiskDurable}.Options(42))
type Scenario struct {
	// Faults names the kinds of fault to inject, exactly: "all" (every
	// kind of FaultKinds, and the disk faults Swarm draws in durable
	// runs), "none" (no fault phase and no reconfigurations), or kinds
	// separated by commas (FaultKinds and DiskFaultKinds). A kind the seed
	// chose keeps its rate or count, a kind it left out gets one drawn
	// from the seed, and every other kind is off. Empty leaves the seed's
	// choice.
	Faults string
	// Latency is the healthy network's one-way latency, a constant model
	// as ParseLatency reads it ("constant:2ms"). Empty leaves the seed's.
	Latency string
	// FaultLatency is the fault phase's latency model, as ParseLatency
	// reads it ("cloud", "exp:min=5ms,mean=50ms", ...); it turns the
	// latency fault on. Empty leaves the seed's.
	FaultLatency string
	// Duration is the fault phase's length in virtual time when
	// SetDuration is true (zero: no fault phase); the workload is paced
	// over it.
	Duration time.Duration
	// SetDuration says Duration is set; false leaves the seed's fault
	// phase.
	SetDuration bool
	// Disk is DiskMemory or DiskDurable (see Options.Disk). Empty leaves
	// the seed's choice.
	Disk string
	// Detector is "on" to heal with the failure detector, "off" to heal
	// with the hand-driven reconfiguring client (see UseDetector). Empty
	// leaves the seed's choice.
	Detector string
	// Async is "on" for appends in bursts through AppendAsync's batches,
	// "off" for one Append at a time. Empty leaves the seed's choice.
	Async string
}

// ScenarioError is a Scenario's part that Check refused.
type ScenarioError struct {
	// Field names the part, as corfu sim's flag for it does: "faults",
	// "latency", "fault-latency", "duration", "disk", "detector" or
	// "async".
	Field string
	Err   error
}

// Error implements error.
func (e *ScenarioError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *ScenarioError) Unwrap() error { return e.Err }

// Check reports the first part of sc that Options cannot apply, as a
// *ScenarioError, or nil.
func (sc Scenario) Check() error {
	bad := func(field, format string, args ...any) error {
		return &ScenarioError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if sc.Latency != "" {
		m, err := ParseLatency(sc.Latency, nil)
		if err != nil {
			return &ScenarioError{Field: "latency", Err: err}
		}
		// NB: Options carries the healthy network's latency as one
		// constant; models with a distribution apply to the fault phase.
		if _, ok := m.(Constant); !ok {
			return bad("latency", "%s: the healthy network's latency is a constant (such as constant:2ms); give other models to the fault phase (fault-latency)", sc.Latency)
		}
	}
	if sc.FaultLatency != "" {
		if _, err := ParseLatency(sc.FaultLatency, func() time.Duration { return 0 }); err != nil {
			return &ScenarioError{Field: "fault-latency", Err: err}
		}
	}
	if sc.SetDuration && sc.Duration < 0 {
		return bad("duration", "must not be negative")
	}
	switch sc.Disk {
	case "", DiskMemory, DiskDurable:
	default:
		return bad("disk", "%q: want %s or %s", sc.Disk, DiskMemory, DiskDurable)
	}
	for _, part := range []struct{ field, v string }{{"detector", sc.Detector}, {"async", sc.Async}} {
		switch part.v {
		case "", "on", "off":
		default:
			return bad(part.field, "%q: want on or off", part.v)
		}
	}
	if _, err := sc.kinds(); err != nil {
		return &ScenarioError{Field: "faults", Err: err}
	}
	return nil
}

// errNoKind is kinds' error for a kind no catalog has.
var errNoKind = errors.New("unknown kind")

// kinds returns the kinds Faults names, or nil for the seed's choice.
func (sc Scenario) kinds() (map[FaultKind]bool, error) {
	switch sc.Faults {
	case "":
		return nil, nil
	case "none":
		return map[FaultKind]bool{}, nil
	case "all":
		// NB: every kind, and the disk faults Swarm draws (durable runs
		// only; see SwarmDiskKinds).
		on := SwarmDiskKinds()
		for _, k := range FaultKinds() {
			on[k] = true
		}
		return on, nil
	}
	on := map[FaultKind]bool{}
	for _, name := range strings.Split(sc.Faults, ",") {
		k := FaultKind(strings.TrimSpace(name))
		if !isKind(k) {
			return nil, fmt.Errorf("%w %q; want all, none, or some of %s", errNoKind, k, KindList())
		}
		on[k] = true
	}
	return on, nil
}

// isKind reports whether k is in FaultKinds or DiskFaultKinds.
func isKind(k FaultKind) bool {
	for _, c := range append(FaultKinds(), diskKinds...) {
		if c == k {
			return true
		}
	}
	return false
}

// KindList names every kind of fault, separated by commas, the disk
// faults (durable runs only) last.
func KindList() string {
	var names []string
	for _, k := range append(FaultKinds(), diskKinds...) {
		names = append(names, string(k))
	}
	return strings.Join(names, ",")
}

// Options returns the options of seed's run under sc: Swarm(seed), then
// sc's parts, expanded (Options.Expanded). The same scenario and seed give
// the same options every time. It panics if Check fails: check a scenario
// built from input first.
func (sc Scenario) Options(seed uint64) Options {
	if err := sc.Check(); err != nil {
		panic("sim: Scenario.Options: " + err.Error())
	}
	o := Swarm(seed)
	swarm := o
	if sc.Latency != "" {
		m, _ := ParseLatency(sc.Latency, nil)
		o.Latency = time.Duration(m.(Constant))
	}
	if sc.Disk != "" {
		o.Disk = sc.Disk
	}
	if sc.Detector != "" {
		UseDetector(&o, sc.Detector == "on")
	}
	switch w := &o.Workload; {
	case sc.Async == "off":
		w.Bursts = 0
	case sc.Async == "on" && w.Bursts == 0:
		w.Bursts, w.MaxBurst = 2, 8
	}
	if on, _ := sc.kinds(); on != nil {
		applyFaults(&o, on)
		ApplyDiskFaults(&o, on)
	}
	if sc.FaultLatency != "" {
		o.Faults.Latency = sc.FaultLatency
		if o.Faults.Duration == 0 {
			o.Faults.Duration = drawFaults(seed).duration
		}
	}
	if sc.SetDuration {
		f := &o.Faults
		if f.Duration > 0 && f.ClogMean > 0 {
			f.ClogMean = f.ClogMean * sc.Duration / f.Duration
		}
		f.Duration = sc.Duration
	}
	if o.Faults.Duration != swarm.Faults.Duration || o.Workload.Reconfigs != swarm.Workload.Reconfigs {
		spread(&o)
	}
	if o.Workload.Reconfigs != swarm.Workload.Reconfigs {
		// The bound on epoch changes counts the clients, the reconfiguring
		// one included: let Expanded derive it again.
		o.Liveness.MaxEpochChanges = 0
	}
	return o.Expanded()
}

// faultDraws are the rates and counts a kind of fault gets when a
// Scenario turns it on in a seed whose Swarm options left it out. They are
// drawn from the seed, all of them whatever the kinds chosen, so that one
// kind's presence never shifts another's draws.
type faultDraws struct {
	duration           time.Duration
	latency            string
	drop, dup, reorder float64
	late               time.Duration
	counts             []int // in the order of countFields
	reconfigs          int
}

func drawFaults(seed uint64) faultDraws {
	r := rand.New(rand.NewPCG(seed, 0xfa017))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond }
	d := faultDraws{duration: ms(1000, 6000)}
	d.latency = []string{
		"bimodal",
		fmt.Sprintf("exp:min=%dms,mean=%dms", r.IntN(31), 30+r.IntN(71)),
		"study",
		fmt.Sprintf("cloud+outage:%v-%v", d.duration/4, d.duration/2),
	}[r.IntN(4)]
	d.drop = 0.3 * r.Float64()
	d.dup, d.late = 0.5*r.Float64(), ms(10, 2000)
	d.reorder = 0.2 * r.Float64()
	for range countKinds[:len(countKinds)-1] {
		d.counts = append(d.counts, 1+r.IntN(3))
	}
	d.reconfigs = 1 + r.IntN(3)
	// NB: kinds added since draw from a stream of their own, so that the
	// draws above stay what they were.
	d.counts = append(d.counts, 1+rand.New(rand.NewPCG(seed, 0xa3e51a)).IntN(2))
	return d
}

// countKinds are the kinds of fault a FaultConfig counts in windows, in the
// order of countFields.
var countKinds = []FaultKind{
	FaultClog, FaultSwizzle, FaultPartition, FaultAsymmetric, FaultBridge, FaultFlap,
	FaultBlackout, FaultOutage, FaultPause, FaultCrash, FaultClock, FaultReformat,
	FaultAmnesia,
}

func countFields(f *FaultConfig) []*int {
	return []*int{&f.Clogs, &f.Swizzles, &f.Partitions, &f.Asymmetric, &f.Bridges, &f.Flaps,
		&f.Blackouts, &f.Outages, &f.Pauses, &f.Crashes, &f.Clocks, &f.Reformats, &f.Amnesias}
}

// Injected returns the kinds of fault o's run injects in its fault phase
// (the disk faults and reconfigurations aside): none without a fault
// phase.
func Injected(o Options) map[FaultKind]bool {
	f := o.Faults
	on := map[FaultKind]bool{}
	if f.Duration <= 0 {
		return on
	}
	set := func(k FaultKind, v bool) {
		if v {
			on[k] = true
		}
	}
	set(FaultLatency, f.Latency != "")
	set(FaultDrop, f.Drop > 0)
	set(FaultDuplicate, f.Duplicate > 0)
	set(FaultReorder, f.Reorder > 0)
	for i, c := range countFields(&f) {
		set(countKinds[i], *c > 0)
	}
	return on
}

// applyFaults makes o inject exactly the kinds of fault in on: a kind the
// seed chose keeps its rate or count, a kind it left out gets one drawn
// from the seed, and the kinds not in on are switched off. Without any
// kind but reconfig, the run has no fault phase.
func applyFaults(o *Options, on map[FaultKind]bool) {
	d := drawFaults(o.Seed)
	f := &o.Faults
	rate := func(k FaultKind, v *float64, drawn float64) {
		switch {
		case !on[k]:
			*v = 0
		case *v == 0:
			*v = drawn
		}
	}
	if !on[FaultLatency] {
		f.Latency = ""
	} else if f.Latency == "" {
		f.Latency = d.latency
	}
	rate(FaultDrop, &f.Drop, d.drop)
	rate(FaultDuplicate, &f.Duplicate, d.dup)
	if f.Duplicate == 0 {
		f.DuplicateLate = 0
	} else if f.DuplicateLate == 0 {
		f.DuplicateLate = d.late
	}
	rate(FaultReorder, &f.Reorder, d.reorder)
	for i, c := range countFields(f) {
		switch {
		case !on[countKinds[i]]:
			*c = 0
		case *c == 0:
			*c = d.counts[i]
		}
	}
	f.Blackouts = min(f.Blackouts, 1) // as Swarm: one node silenced for most of the phase
	w := &o.Workload
	switch {
	case !on[FaultReconfig]:
		w.Reconfigs = 0
	case w.Reconfigs == 0:
		w.Reconfigs = d.reconfigs
	}
	injected := false
	for k := range on {
		injected = injected || k != FaultReconfig
	}
	switch {
	case !injected:
		*f = FaultConfig{}
	case f.Duration == 0:
		f.Duration = d.duration
	}
}

// spread paces the workload over the fault phase as Swarm does, for
// options whose fault phase or reconfigurations a Scenario changed.
func spread(o *Options) {
	w := &o.Workload
	w.Think = 5 * time.Millisecond
	w.ReconfigGap = 0 // the default, filled in by Expanded
	if d := o.Faults.Duration; d > 0 {
		n := max(w.Appends, w.Reads, 1)
		w.Think = max(w.Think, 2*d/time.Duration(n))
		w.ReconfigGap = 2 * d / time.Duration(w.Reconfigs+1)
	}
}
