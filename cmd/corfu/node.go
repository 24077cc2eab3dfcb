package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/persist"
	"github.com/corfulog/corfu/transport/tcp"
)

// nodeOptions says which node of which cluster to start, and where its data
// lives.
type nodeOptions struct {
	cluster *clusterFile
	name    string
	data    string // the data directory
	init    bool   // the node is new: its data directory may be empty
	sync    disk.SyncMode
	log     *slog.Logger
	// failed is called, once, when the node could not make a role's state
	// durable: it must stop serving (see transport.Server.Persist).
	failed func(error)
}

// node is one daemon's roles, ready to serve.
type node struct {
	name   string
	server *transport.Server
	roles  tcp.Role
	unit   *disk.Unit   // nil unless the node is a unit
	state  *persist.Dir // nil unless the node is a sequencer or a layout server
}

// errInit reports a data directory that does not fit --init: state where a
// new node must have none, or none where a node that ran before must.
var errInit = errors.New("data directory does not match --init")

// openNode opens the roles o.name plays in o.cluster from o.data: the
// unit's segment files under data/unit, the sequencer's and the layout
// server's state under data/state. A node started with init set creates
// them: the layout server from the cluster's projection of epoch 0, the
// cluster's first sequencer bootstrapped at epoch 0. Without init, every
// role restarts from what it made durable, and a role whose state is gone
// is refused (a layout server that forgot its promises would break the
// agreement on projections), except a unit, which comes back blank and is
// let in again by the next reconfiguration (see storage.ErrBlank).
func openNode(o nodeOptions) (n *node, err error) {
	isUnit, isSeq, isLayout := o.cluster.roles(o.name)
	if !isUnit && !isSeq && !isLayout {
		return nil, fmt.Errorf("node %q is not in the cluster file", o.name)
	}
	if o.data == "" {
		return nil, errors.New("no data directory (--data)")
	}
	n = &node{name: o.name, server: &transport.Server{}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if isUnit {
		if err := n.openUnit(o); err != nil {
			return nil, err
		}
	}
	if isSeq || isLayout {
		st, err := persist.Open(vfs.Default, filepath.Join(o.data, "state"), persist.Options{Node: o.name})
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		n.state = st
		var p transport.Persister = st
		if isSeq {
			// NB: a sequencer with no mark to vouch for (a standby, or one
			// whose state was lost) saves none, or it would restart as
			// Recovered and vouch for a tail it never knew.
			p = st.ForSequencer(func() *sequencer.Sequencer { return n.server.Sequencer })
		}
		n.server.Persist = &failStop{Persister: p, failed: o.failed}
		n.server.Ahead = transport.SystemTimers{}
	}
	if isSeq {
		if err := n.openSequencer(o); err != nil {
			return nil, err
		}
	}
	if isLayout {
		if err := n.openLayout(o); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *node) openUnit(o nodeOptions) error {
	u, err := disk.Open(vfs.Default, filepath.Join(o.data, "unit"), disk.Options{
		Node: o.name, Rand: rand.Reader, HeldData: !o.init, Sync: o.sync,
	})
	if err != nil {
		return fmt.Errorf("unit: %w", err)
	}
	n.unit, n.server.Unit, n.roles = u, u, n.roles|tcp.RoleUnit
	if o.init && (u.Epoch() > 0 || u.Tail() > 0) {
		return fmt.Errorf("%w: unit directory holds data (epoch %d, tail %d): start it without --init", errInit, u.Epoch(), u.Tail())
	}
	if u.Blank() {
		o.log.Warn("unit came back with an empty data directory: it is blank until a reconfiguration lets it rejoin", "node", o.name)
	}
	return nil
}

// sequencerReserve is how far ahead of its tail a served sequencer
// reserves addresses (sequencer.Config.Reserve): it saves its mark, an
// fsync, once per this many tokens, in the background while half a
// reserve still lies ahead (transport.Server.Ahead), so that no token
// waits for the save unless the tail catches up with it. A sequencer that
// restarts from its mark skips at most one and a half times this many
// addresses, which the next reconfiguration fills as holes. The package
// default (64) made the save one per token request once clients take
// batches of 64 or more (AppendAsync does).
const sequencerReserve = 4096

func (n *node) openSequencer(o nodeOptions) error {
	st, saved := n.state.Sequencer()
	cfg := sequencer.Config{Backpointers: o.cluster.backpointers(), Incarnation: n.state.Incarnation(), Reserve: sequencerReserve}
	switch {
	case o.init && saved:
		return fmt.Errorf("%w: the sequencer's state holds a mark (%d): start it without --init", errInit, st.Mark)
	case o.init:
		s := sequencer.New(cfg)
		if o.name == o.cluster.Sequencer {
			// NB: the cluster's first sequencer serves epoch 0 at once.
			if err := s.Bootstrap(0, 0, nil); err != nil {
				return err
			}
		}
		n.server.Sequencer = s
		if err := n.server.Persist.SaveSequencer(s.State()); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	default:
		// NB: a sequencer that lost its state directory comes back with no
		// mark, and says so when sealed (sequencer.SealResult.NoMark).
		cfg = n.state.SequencerConfig(cfg)
		n.server.Sequencer = sequencer.New(cfg)
		o.log.Info("sequencer restarted", "node", o.name, "mark", st.Mark, "booted_epoch", st.Booted, "has_mark", saved,
			"incarnation", cfg.Incarnation)
	}
	n.roles |= tcp.RoleSequencer
	return nil
}

func (n *node) openLayout(o nodeOptions) error {
	st, saved := n.state.Layout()
	switch {
	case o.init && saved:
		return fmt.Errorf("%w: the layout server's state is there (epoch %d): start it without --init", errInit, st.Latest.Epoch)
	case o.init:
		p, err := o.cluster.projection()
		if err != nil {
			return err
		}
		a := projection.NewAcceptor(p)
		if err := n.state.SaveLayout(a.State()); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		n.server.Layout = a
	case !saved:
		return fmt.Errorf("%w: no layout state in %s: a layout server that lost it must not rejoin; start --init only on a new cluster", errInit, o.data)
	default:
		a, err := projection.RestoreAcceptor(st)
		if err != nil {
			return fmt.Errorf("layout state: %w", err)
		}
		n.server.Layout = a
	}
	n.roles |= tcp.RoleLayout
	return nil
}

// close closes what n opened: the unit syncs and closes its files.
func (n *node) close() error {
	var errs []error
	if n.unit != nil {
		errs = append(errs, n.unit.Close())
	}
	if n.state != nil {
		n.server.WaitSaves()
		errs = append(errs, n.state.Close())
	}
	return errors.Join(errs...)
}

// failStop is a Persister that reports its first failure: a host whose
// state did not reach its disk must stop serving, since its roles' memory
// is ahead of what a restart would find.
type failStop struct {
	transport.Persister
	once   sync.Once
	failed func(error)
}

// SaveSequencer implements transport.Persister.
func (f *failStop) SaveSequencer(st sequencer.State) error {
	return f.check(f.Persister.SaveSequencer(st))
}

// SaveLayout implements transport.Persister.
func (f *failStop) SaveLayout(st projection.AcceptorState) error {
	return f.check(f.Persister.SaveLayout(st))
}

func (f *failStop) check(err error) error {
	if err != nil && f.failed != nil {
		f.once.Do(func() { f.failed(err) })
	}
	return err
}
