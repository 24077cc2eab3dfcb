package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport/tcp"
)

// runDetector runs a failure detector for corfu serve --heal until ctx
// ends: a client of the cluster over TCP (with TLS if tlsCfg is not nil), opened as soon as the layout
// servers answer, probing with timeout and pausing as long between rounds,
// taking a node out once confirm detectors (see
// corfu.DetectorConfig.Confirm) suspect it, and scrubbing scrub addresses
// in each round with nothing else to do.
// What it does goes to log, and to the metrics m if not nil.
func runDetector(ctx context.Context, cl *clusterFile, node string, log *slog.Logger, tlsCfg *tls.Config, timeout time.Duration, confirm, scrub int, m *clientMetrics) {
	log = log.With("detector", node)
	net, err := tcp.NewClient(tcp.ClientConfig{Resolve: cl.resolver(), Name: "detector@" + node, Logger: log, TLS: tlsCfg})
	if err != nil {
		log.Error("detector: no transport", "err", err)
		return
	}
	defer net.Close()
	var layout []projection.NodeID
	for _, n := range cl.Layout {
		layout = append(layout, projection.NodeID(n))
	}
	var hooks []corfu.Hook
	if m != nil {
		hooks = append(hooks, m)
	}
	var c *corfu.Client
	for c == nil {
		c, err = corfu.Open(ctx, corfu.Config{Layout: layout, Transport: net, Logger: log, Backpointers: cl.backpointers(), Hooks: hooks})
		if err != nil {
			log.Debug("detector: waiting for the layout servers", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(timeout):
			}
		}
	}
	var spares, standbys []projection.NodeID
	for _, n := range cl.Spares {
		spares = append(spares, projection.NodeID(n))
	}
	for _, n := range cl.Standbys {
		standbys = append(standbys, projection.NodeID(n))
	}
	d := corfu.NewDetector(c, corfu.DetectorConfig{
		Interval: timeout, Timeout: timeout, Spares: spares, Standbys: standbys, Replicas: cl.Replicas,
		Confirm: confirm, Name: node, Scrub: scrub,
		OnEvent: func(ev corfu.DetectorEvent) {
			log.Info("detector: "+ev.Kind, "node", ev.Node, "fresh", ev.Fresh, "epoch", ev.Epoch, "err", ev.Err, "detail", ev.Detail)
		},
	})
	log.Info("detector: watching", "spares", cl.Spares, "standbys", cl.Standbys)
	_ = d.Run(ctx)
}
