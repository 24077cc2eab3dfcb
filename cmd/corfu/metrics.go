package main

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// metered is a transport.Handler that counts and times every request its
// next handler serves, by operation and outcome.
type metered struct {
	next     transport.Handler
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// newMetered wraps next, registering its metrics in reg.
func newMetered(next transport.Handler, reg prometheus.Registerer) *metered {
	m := &metered{
		next: next,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corfu_requests_total",
			Help: "Requests served, by operation and outcome (ok, or the error's name).",
		}, []string{"op", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "corfu_request_seconds",
			Help:    "Time to serve a request, persisting included, by operation.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2.5, 14),
		}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// Handle implements transport.Handler.
func (m *metered) Handle(req *transport.Request) *transport.Response {
	start := time.Now()
	resp := m.next.Handle(req)
	op := req.Op.String()
	m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(op, resultOf(resp.Err)).Inc()
	return resp
}

// results names the outcomes the request counter tells apart.
var results = []struct {
	err  error
	name string
}{
	{storage.ErrWritten, "written"},
	{storage.ErrUnwritten, "unwritten"},
	{storage.ErrTrimmed, "trimmed"},
	{storage.ErrJunk, "junk"},
	{storage.ErrSealed, "sealed"},
	{storage.ErrFutureEpoch, "future_epoch"},
	{storage.ErrBlank, "blank"},
	{sequencer.ErrNotReady, "not_ready"},
	{projection.ErrStaleEpoch, "stale_epoch"},
	{projection.ErrRejected, "rejected"},
	{projection.ErrEpochGap, "epoch_gap"},
	{transport.ErrWrongRole, "wrong_role"},
	{transport.ErrMalformed, "malformed"},
	{transport.ErrNotDurable, "not_durable"},
}

// resultOf names the outcome err (nil: "ok") for the request counter.
func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	for _, r := range results {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// registerNodeMetrics registers gauges of n's roles in reg: a unit's
// epoch, tail, trim mark, bytes held and blankness; the sequencer's epoch
// and tail; the layout server's latest committed epoch.
func registerNodeMetrics(reg prometheus.Registerer, n *node) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	if u := n.unit; u != nil {
		gauge("corfu_unit_epoch", "The epoch the unit is sealed at.", func() float64 { return float64(u.Epoch()) })
		gauge("corfu_unit_tail", "One past the highest local address the unit wrote, filled or trimmed.", func() float64 { return float64(u.Tail()) })
		gauge("corfu_unit_trim_mark", "The unit's prefix trim mark.", func() float64 { return float64(u.TrimMark()) })
		gauge("corfu_unit_stored_bytes", "Payload bytes the unit holds.", func() float64 { return float64(u.StoredBytes()) })
		gauge("corfu_unit_blank", "1 if the unit came back blank and waits to rejoin.", func() float64 {
			if u.Blank() {
				return 1
			}
			return 0
		})
	}
	if s := n.server.Sequencer; s != nil {
		gauge("corfu_sequencer_epoch", "The epoch the sequencer serves or is sealed at.", func() float64 { return float64(s.Epoch()) })
		gauge("corfu_sequencer_tail", "The next address the sequencer hands out.", func() float64 { return float64(s.Tail()) })
	}
	if a := n.server.Layout; a != nil {
		gauge("corfu_layout_epoch", "The newest epoch the layout server committed.", func() float64 { return float64(a.Latest().Epoch) })
	}
}

// clientMetrics is a corfu.Hook that counts and times what a library
// client of the daemon does (the failure detector's, with --heal): its
// appends, reads, retries, projection refreshes, reconfigurations and
// detector actions, by outcome (corfu.Outcome).
type clientMetrics struct {
	appends, reads, retries, refreshes, reconfigs *prometheus.CounterVec
	lostRaces                                     prometheus.Counter
	appendSeconds, readSeconds                    prometheus.Histogram
	refreshSeconds, reconfigSeconds               prometheus.Histogram
	detector                                      *prometheus.CounterVec
}

// detectorKinds are the kinds of corfu.DetectorEvent.
var detectorKinds = []string{"suspect", "replace", "move", "rejoin", "grow", "rebuild", "drop", "scrub"}

// newClientMetrics registers a client's metrics in reg. The counters of
// successes (and of each detector action's) start at 0, so that every
// family shows before anything happened.
func newClientMetrics(reg prometheus.Registerer) *clientMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	seconds := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(1e-4, 2.5, 12)})
	}
	m := &clientMetrics{
		appends:   counter("corfu_client_appends_total", "Appends by a client of this process, by outcome (ok, or why it failed).", "outcome"),
		reads:     counter("corfu_client_reads_total", "Reads by a client of this process, by outcome (ok, junk, unwritten, trimmed, or why it failed).", "outcome"),
		retries:   counter("corfu_client_retries_total", "Requests tried again after no answer or a not-ready sequencer, by why (timeout, unreachable, not_ready, ...).", "reason"),
		refreshes: counter("corfu_client_refreshes_total", "Projection fetches a client made for a newer epoch, by outcome.", "outcome"),
		reconfigs: counter("corfu_client_reconfigurations_total", "Reconfigurations a client ran (its own, its detector's, its recoveries), by outcome.", "outcome"),
		lostRaces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corfu_client_append_lost_races_total",
			Help: "Addresses an append gave up for a fresh token (another writer or a fill took them).",
		}),
		appendSeconds:   seconds("corfu_client_append_seconds", "Time to an acknowledged append."),
		readSeconds:     seconds("corfu_client_read_seconds", "Time to a read that returned an entry."),
		refreshSeconds:  seconds("corfu_client_refresh_seconds", "Time to fetch a newer projection, successful or not."),
		reconfigSeconds: seconds("corfu_client_reconfiguration_seconds", "Time a reconfiguration took, successful or not."),
		detector:        counter("corfu_detector_actions_total", "What a failure detector of this process did (suspect, replace, move, grow, rebuild, drop), by outcome.", "kind", "outcome"),
	}
	reg.MustRegister(m.appends, m.reads, m.retries, m.refreshes, m.reconfigs, m.lostRaces,
		m.appendSeconds, m.readSeconds, m.refreshSeconds, m.reconfigSeconds, m.detector)
	for _, v := range []*prometheus.CounterVec{m.appends, m.reads, m.refreshes, m.reconfigs} {
		v.WithLabelValues("ok")
	}
	for _, k := range detectorKinds {
		m.detector.WithLabelValues(k, "ok")
	}
	return m
}

// OnAppend implements corfu.HookAppend.
func (m *clientMetrics) OnAppend(ev corfu.AppendEvent) {
	m.appends.WithLabelValues(corfu.Outcome(ev.Err)).Inc()
	if ev.Tokens > 1 {
		m.lostRaces.Add(float64(ev.Tokens - 1))
	}
	if ev.Err == nil {
		m.appendSeconds.Observe(ev.Took.Seconds())
	}
}

// OnRead implements corfu.HookRead.
func (m *clientMetrics) OnRead(ev corfu.ReadEvent) {
	m.reads.WithLabelValues(corfu.Outcome(ev.Err)).Inc()
	if ev.Err == nil {
		m.readSeconds.Observe(ev.Took.Seconds())
	}
}

// OnRetry implements corfu.HookRetry.
func (m *clientMetrics) OnRetry(ev corfu.RetryEvent) {
	m.retries.WithLabelValues(corfu.Outcome(ev.Err)).Inc()
}

// OnRefresh implements corfu.HookRefresh.
func (m *clientMetrics) OnRefresh(ev corfu.RefreshEvent) {
	m.refreshes.WithLabelValues(corfu.Outcome(ev.Err)).Inc()
	m.refreshSeconds.Observe(ev.Took.Seconds())
}

// OnReconfigure implements corfu.HookReconfigure.
func (m *clientMetrics) OnReconfigure(ev corfu.ReconfigureEvent) {
	m.reconfigs.WithLabelValues(corfu.Outcome(ev.Err)).Inc()
	m.reconfigSeconds.Observe(ev.Took.Seconds())
}

// OnDetectorEvent implements corfu.HookDetector.
func (m *clientMetrics) OnDetectorEvent(ev corfu.DetectorEvent) {
	m.detector.WithLabelValues(ev.Kind, corfu.Outcome(ev.Err)).Inc()
}
