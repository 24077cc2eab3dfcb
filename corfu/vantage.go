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
// detectors posted. A peer's report counts while the peer keeps posting:
// its newest round on any board changed within the last Misses rounds of
// this detector (it goes up, or down once a restarted peer has posted to
// every board). A
// node is confirmed once Confirm detectors, this one included, suspect it;
// with fewer peers reporting, all of those reporting must.

// peerView is what a detector knows of another detector's reports.
type peerView struct {
	name     string
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
	post := transport.EncodeReport(d.name, encodeSuspicion(d.round, mine))
	got := make([][]transport.Report, len(p.Layout))
	d.c.each("report", len(p.Layout), func(i int) {
		pctx, cancel := d.c.env.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
		got[i], _ = transport.LayoutClient{Caller: d.c.cfg.Transport, Node: p.Layout[i]}.Report(pctx, post)
	})
	// NB: each peer's newest report on any board this round: boards that
	// missed some posts hold older ones.
	var newest []peerView
	for _, reports := range got {
		for _, r := range reports {
			if r.Reporter == d.name {
				continue
			}
			round, suspects, err := decodeSuspicion(r.Body)
			if err != nil {
				continue // NB: a peer of another version, or a bad report: not a vantage
			}
			i := slices.IndexFunc(newest, func(v peerView) bool { return v.name == r.Reporter })
			if i < 0 {
				newest = append(newest, peerView{name: r.Reporter})
				i = len(newest) - 1
			}
			if v := &newest[i]; round > v.round {
				v.round, v.suspects = round, suspects
			}
		}
	}
	for _, n := range newest {
		i := slices.IndexFunc(d.peers, func(v peerView) bool { return v.name == n.name })
		if i < 0 {
			d.peers = append(d.peers, peerView{name: n.name})
			i = len(d.peers) - 1
		}
		// NB: a round below the one known is a peer that restarted (its
		// rounds start again from one) and has posted to every board
		// since: it reports again.
		if v := &d.peers[i]; n.round != v.round {
			v.round, v.seen, v.suspects = n.round, d.round, n.suspects
		}
	}
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
	reporting, agree := 1, 1
	for _, v := range d.peers {
		if d.round-v.seen > uint64(d.cfg.Misses) {
			continue // NB: it stopped reporting: dead, or cut off from the layout servers
		}
		reporting++
		if slices.Contains(v.suspects, n) {
			agree++
		}
	}
	return agree >= min(d.cfg.Confirm, reporting)
}

// maxSuspects bounds a suspicion report's list.
const maxSuspects = 256

// encodeSuspicion returns a report's body: the round, then the suspected
// nodes, each length-prefixed.
func encodeSuspicion(round uint64, suspects []projection.NodeID) []byte {
	out := binary.AppendUvarint(nil, round)
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
func decodeSuspicion(b []byte) (round uint64, suspects []projection.NodeID, err error) {
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	round, ok := next()
	if !ok {
		return 0, nil, fmt.Errorf("%w: no round", errBadSuspicion)
	}
	count, ok := next()
	if !ok || count > maxSuspects {
		return 0, nil, fmt.Errorf("%w: bad count", errBadSuspicion)
	}
	for range count {
		n, ok := next()
		if !ok || n == 0 || n > uint64(len(b)) {
			return 0, nil, fmt.Errorf("%w: bad node name", errBadSuspicion)
		}
		suspects = append(suspects, projection.NodeID(b[:n]))
		b = b[n:]
	}
	if len(b) != 0 {
		return 0, nil, fmt.Errorf("%w: %d trailing bytes", errBadSuspicion, len(b))
	}
	return round, suspects, nil
}
