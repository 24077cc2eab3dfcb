package tango

import (
	"context"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/storage"
)

// load builds every hosted object again from the start of the log. The
// caller holds the readers.
func (r *Runtime) load(ctx context.Context) error {
	epoch := r.c.Epoch()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.ids {
		h := r.hosts[id]
		h.reset(h.fresh())
	}
	r.setReaders(epoch)
	r.loaded = true
	return nil
}

// snapshot builds, on the side, the runtime's objects as of pos.
func (r *Runtime) snapshot(ctx context.Context, pos storage.Address) (*Runtime, error) {
	s := New(r.c, r.opts)
	r.mu.Lock()
	for _, id := range r.ids {
		h := r.hosts[id]
		c := &host{id: h.id, streams: h.streams, fresh: h.fresh}
		c.reset(h.fresh())
		s.hosts[id] = c
		s.ids = append(s.ids, id)
	}
	r.mu.Unlock()
	s.limit = pos
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos < pos {
		return nil, fmt.Errorf("tango: snapshot at %d: %w: the objects' streams end at %d", pos, corfu.ErrBeyondTail, s.pos)
	}
	return s, nil
}
