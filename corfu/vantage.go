package corfu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport"
)

// Confirmation from other vantage points (DetectorConfig.Confirm).
//
// Every round, a detector with Confirm above one posts what it suspects to
// the layout servers' boards (transport.OpReport) and reads what the other
// detectors posted. A report names its detector's incarnation (its
// client's Writer) and round. A peer counts while it keeps posting: the
// round of one of its incarnations went up within the last Misses rounds
// of this detector. Only going up counts: a board that missed some posts,
// or holds a dead incarnation's last one, never makes a peer look alive,
// however the boards this detector reaches change from round to round;
// and a restarted peer is a new incarnation, counted at its first post. A
// node is confirmed once Confirm detectors, this one included, suspect it;
// with fewer peers reporting, all of those reporting must.

// peerView is what a detector knows of one incarnation of another
// detector.
type peerView struct {
	name     string
	inc      uint64              // the incarnation
	round    uint64              // the newest round it reported
	seen     uint64              // this detector's round when that round went up
	suspects []projection.NodeID // what it suspected then
}

// report posts this round's suspects to p's layout servers and takes in
// the other detectors' reports.
func (d *Detector) report(ctx context.Context, p *projection.Projection, watched []projection.NodeID) {
	d.round++
	var mine []projection.NodeID
	for _, n := range watched {
		if d.suspected(n) {
			mine = append(mine, n)
		}
	}
	post := transport.EncodeReport(d.name, encodeSuspicion(d.inc, d.round, mine))
	got := make([][]transport.Report, len(p.Layout))
	d.c.each("report", len(p.Layout), func(i int) {
		pctx, cancel := d.c.env.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
		got[i], _ = transport.LayoutClient{Caller: d.c.cfg.Transport, Node: p.Layout[i]}.Report(pctx, post)
	})
	d.ingest(got)
}

// ingest takes in the reports the boards answered with, in this round.
func (d *Detector) ingest(got [][]transport.Report) {
	for _, reports := range got {
		for _, r := range reports {
			if r.Reporter == d.name {
				continue
			}
			inc, round, suspects, err := decodeSuspicion(r.Body)
			if err != nil {
				continue // NB: a peer of another version, or a bad report: not a vantage
			}
			i := slices.IndexFunc(d.peers, func(v peerView) bool { return v.name == r.Reporter && v.inc == inc })
			if i < 0 {
				d.peers = append(d.peers, peerView{name: r.Reporter, inc: inc})
				i = len(d.peers) - 1
			}
			if v := &d.peers[i]; round > v.round {
				v.round, v.seen, v.suspects = round, d.round, suspects
			}
		}
	}
	// NB: forget incarnations long silent, so that restarts do not pile up.
	d.peers = slices.DeleteFunc(d.peers, func(v peerView) bool { return d.round-v.seen > 8*uint64(d.cfg.Misses) })
}

// confirmed reports whether n is suspected and, with Confirm above one, the
// other detectors reporting agree (see DetectorConfig.Confirm).
func (d *Detector) confirmed(n projection.NodeID) bool {
	if !d.suspected(n) {
		return false
	}
	if d.cfg.Confirm <= 1 {
		return true
	}
	// NB: a peer counts once, by its freshest incarnation.
	var fresh []peerView
	for _, v := range d.peers {
		if d.round-v.seen > uint64(d.cfg.Misses) {
			continue // NB: it stopped reporting: dead, or cut off from the layout servers
		}
		if i := slices.IndexFunc(fresh, func(f peerView) bool { return f.name == v.name }); i < 0 {
			fresh = append(fresh, v)
		} else if v.seen > fresh[i].seen {
			fresh[i] = v
		}
	}
	reporting, agree := 1+len(fresh), 1
	for _, v := range fresh {
		if slices.Contains(v.suspects, n) {
			agree++
		}
	}
	return agree >= min(d.cfg.Confirm, reporting)
}

// maxSuspects bounds a suspicion report's list.
const maxSuspects = 256

// encodeSuspicion returns a report's body: the incarnation, the round,
// then the suspected nodes, each length-prefixed.
func encodeSuspicion(inc, round uint64, suspects []projection.NodeID) []byte {
	out := binary.AppendUvarint(nil, inc)
	out = binary.AppendUvarint(out, round)
	out = binary.AppendUvarint(out, uint64(len(suspects)))
	for _, n := range suspects {
		out = binary.AppendUvarint(out, uint64(len(n)))
		out = append(out, n...)
	}
	return out
}

// errBadSuspicion reports a report body encodeSuspicion did not write.
var errBadSuspicion = errors.New("corfu: malformed suspicion report")

// decodeSuspicion reads encodeSuspicion's form; anything else is
// errBadSuspicion.
func decodeSuspicion(b []byte) (inc, round uint64, suspects []projection.NodeID, err error) {
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	inc, ok := next()
	if !ok {
		return 0, 0, nil, fmt.Errorf("%w: no incarnation", errBadSuspicion)
	}
	if round, ok = next(); !ok {
		return 0, 0, nil, fmt.Errorf("%w: no round", errBadSuspicion)
	}
	count, ok := next()
	if !ok || count > maxSuspects {
		return 0, 0, nil, fmt.Errorf("%w: bad count", errBadSuspicion)
	}
	for range count {
		n, ok := next()
		if !ok || n == 0 || n > uint64(len(b)) {
			return 0, 0, nil, fmt.Errorf("%w: bad node name", errBadSuspicion)
		}
		suspects = append(suspects, projection.NodeID(b[:n]))
		b = b[n:]
	}
	if len(b) != 0 {
		return 0, 0, nil, fmt.Errorf("%w: %d trailing bytes", errBadSuspicion, len(b))
	}
	return inc, round, suspects, nil
}
