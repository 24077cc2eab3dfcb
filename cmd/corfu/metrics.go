package main

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
