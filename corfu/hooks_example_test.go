package corfu_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// tally is a metrics hook: it implements HookAppend and HookReconfigure,
// and no other Hook interface, so the client calls it for appends and
// reconfigurations only. A real one would feed a metrics library (see
// cmd/corfu for Prometheus): count by Outcome, observe Took.
type tally struct {
	mu      sync.Mutex
	appends map[string]int
	tokens  int
}

func (t *tally) OnAppend(ev corfu.AppendEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.appends[corfu.Outcome(ev.Err)]++
	t.tokens += ev.Tokens
}

func (t *tally) OnReconfigure(ev corfu.ReconfigureEvent) {
	fmt.Printf("reconfigured from epoch %d to %d: %s\n", ev.From, ev.Epoch, corfu.Outcome(ev.Err))
}

// Hooks observe what a client does, for metrics, with no dependency on a
// metrics library: each implements whichever Hook interfaces it cares
// about.
func ExampleConfig_hooks() {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		panic(err)
	}
	t := &tally{appends: map[string]int{}}
	cfg := cluster.Config()
	cfg.Hooks = []corfu.Hook{t}
	c, err := corfu.Open(ctx, cfg)
	if err != nil {
		panic(err)
	}

	for _, s := range []string{"a", "b", "c"} {
		if _, err := c.Append(ctx, []byte(s)); err != nil {
			panic(err)
		}
	}
	_, err = c.Append(ctx, nil)
	fmt.Println(errors.Is(err, corfu.ErrNilData))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Append(cancelled, []byte("d"))
	fmt.Println(errors.Is(err, context.Canceled))
	if _, err := c.Reconfigure(ctx, nil); err != nil {
		panic(err)
	}

	fmt.Println("appends:", t.appends, "tokens:", t.tokens)
	// Output:
	// true
	// true
	// reconfigured from epoch 0 to 1: ok
	// appends: map[canceled:1 invalid:1 ok:3] tokens: 3
}
