package tango_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/internal/simworld"
	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

var (
	flagSeed  = flag.Uint64("tango.seed", 0, "run only this seed of the simulated tests")
	flagSeeds = flag.Int("tango.seeds", 0, "seeds of the simulated tests (default 1000; 400 under the race detector, 50 with -short)")
	flagDebug = flag.Bool("tango.debug", false, "log the runtimes' and clients' debug records, with the virtual time (for replaying one seed)")
)

// simSeeds returns the seeds a simulated test runs: -tango.seed alone, or
// 1..N.
func simSeeds() []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	n := *flagSeeds
	if n == 0 {
		n = 1000
		switch {
		case testing.Short():
			n = 50
		case raceEnabled:
			n = 400
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// sweep runs f over seeds on every core and returns its failures by seed.
func sweep(seeds []uint64, f func(seed uint64) error) map[uint64]error {
	var mu sync.Mutex
	failed := map[uint64]error{}
	next := make(chan uint64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				if err := f(seed); err != nil {
					mu.Lock()
					failed[seed] = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range seeds {
		next <- s
	}
	close(next)
	wg.Wait()
	return failed
}

// report fails t for the failures of a sweep, the first few in full.
func report(t *testing.T, name string, n int, failed map[uint64]error) {
	t.Helper()
	seeds := sortedSeeds(failed)
	for i, s := range seeds {
		if i == 5 {
			t.Errorf("... and %d more", len(seeds)-5)
			break
		}
		t.Errorf("seed %d: %v\nreplay: go test ./examples/tango -run '^%s$' -tango.seed=%d", s, failed[s], name, s)
	}
	if len(seeds) > 0 {
		t.Errorf("%d of %d seeds failed: %v", len(seeds), n, seeds)
	}
}

func sortedSeeds(m map[uint64]error) []uint64 {
	out := make([]uint64, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Map operations as the history records them.
const (
	opPut = iota + 1
	opGet
	opDelete
)

// mapOp is one Map operation of a simulated history.
type mapOp struct {
	client  int
	kind    int
	key     string
	value   string // put: the value put; get: the value read
	ok      bool   // get: whether the key was present
	invoke  time.Duration
	ret     time.Duration
	unknown bool // a put or delete whose outcome is unknown
}

// mapState is the porcupine model's state of one key.
type mapState struct {
	value string
	ok    bool
}

// mapModel is a map partitioned by key: a put sets the key, a delete
// removes it, a get returns it.
func mapModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			for _, o := range history {
				k := o.Input.(mapOp).key
				by[k] = append(by[k], o)
			}
			keys := make([]string, 0, len(by))
			for k := range by {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() any { return mapState{} },
		Step: func(state, input, output any) (bool, any) {
			s, in := state.(mapState), input.(mapOp)
			switch in.kind {
			case opPut:
				return true, mapState{in.value, true}
			case opDelete:
				return true, mapState{}
			}
			out := output.(mapOp)
			return out.ok == s.ok && (!s.ok || out.value == s.value), s
		},
		DescribeOperation: func(input, output any) string {
			in := input.(mapOp)
			switch in.kind {
			case opPut:
				return fmt.Sprintf("put(%s, %s)", in.key, in.value)
			case opDelete:
				return fmt.Sprintf("delete(%s)", in.key)
			}
			out := output.(mapOp)
			return fmt.Sprintf("get(%s) -> %q %v", in.key, out.value, out.ok)
		},
	}
}

// checkMapHistory checks a history with porcupine. A put or delete of
// unknown outcome may have taken effect at any time after its invocation,
// or never: it returns after everything else.
func checkMapHistory(ops []mapOp) porcupine.CheckResult {
	var hist []porcupine.Operation
	for _, o := range ops {
		ret := int64(o.ret)
		if o.unknown {
			ret = math.MaxInt64
		}
		hist = append(hist, porcupine.Operation{ClientId: o.client, Input: o, Call: int64(o.invoke), Output: o, Return: ret})
	}
	res, _ := porcupine.CheckOperationsVerbose(mapModel(), hist, time.Minute)
	return res
}

// TestMapCheckerCatches: the checker finds a stale read, a read of a value
// never put and a lost delete, and accepts a put of unknown outcome that
// shows late.
func TestMapCheckerCatches(t *testing.T) {
	put := func(c int, v string, at, until time.Duration) mapOp {
		return mapOp{client: c, kind: opPut, key: "k", value: v, invoke: at, ret: until}
	}
	get := func(c int, v string, ok bool, at, until time.Duration) mapOp {
		return mapOp{client: c, kind: opGet, key: "k", value: v, ok: ok, invoke: at, ret: until}
	}
	del := mapOp{client: 1, kind: opDelete, key: "k", invoke: 30, ret: 40}
	ok := [][]mapOp{
		{put(1, "a", 0, 10), get(2, "a", true, 20, 30)},
		{put(1, "a", 0, 10), del, get(2, "", false, 50, 60)},
		{func() mapOp { o := put(1, "b", 0, 10); o.unknown = true; return o }(), get(2, "", false, 20, 30), get(2, "b", true, 40, 50)},
	}
	for _, h := range ok {
		assert.Equal(t, porcupine.Ok, checkMapHistory(h), "%v", h)
	}
	bad := [][]mapOp{
		{put(1, "a", 0, 10), put(1, "b", 20, 30), get(2, "a", true, 40, 50)}, // stale
		{put(1, "a", 0, 10), get(2, "z", true, 20, 30)},                      // never put
		{put(1, "a", 0, 10), del, get(2, "a", true, 50, 60)},                 // lost delete
	}
	for _, h := range bad {
		assert.Equal(t, porcupine.Illegal, checkMapHistory(h), "%v", h)
	}
}

// mapRun is one simulated run of Map clients.
type mapRun struct {
	w       *simworld.World
	rng     *rand.Rand
	ops     []mapOp
	trims   int // checkpoint-and-trim cycles that trimmed
	mutants tango.Mutants
}

const mapKeys = 3

// runMap runs seed: three clients put, get and delete keys of one map,
// under the seed's faults; a fourth checkpoints and trims now and then; a
// fifth joins after the heal (from the checkpoint) and reads; a last one
// reads every key at the end. The history must be linearizable.
func runMap(seed uint64, mutants tango.Mutants, tune ...func(*sim.Options)) (*mapRun, error) {
	o := sim.Swarm(seed)
	for _, f := range tune {
		f(&o)
	}
	w, err := simworld.New(debugOptions(o), 6)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	r := &mapRun{w: w, mutants: mutants}
	fault := max(w.Heal, time.Second)
	think := func(rng *rand.Rand, n int) error {
		return w.Sleep(time.Duration(rng.Int64N(int64(2*fault/time.Duration(n)) + 1)))
	}
	open := func(node transport.NodeID) (*tango.Map[string, string], error) {
		c, err := w.Open(node)
		if err != nil {
			return nil, err
		}
		if mutants != (tango.Mutants{}) {
			defer tango.SetMutants(c.Env(), mutants)()
		}
		return tango.NewMap[string, string](tango.New(c, tango.Options{Logger: simLogger(string(node), w)}), 1)
	}
	for i := range 3 {
		w.Go(func(node transport.NodeID) error {
			rng := w.Sched.Fork(string(node))
			m, err := open(node)
			if err != nil {
				return err
			}
			n := 8 + rng.IntN(12)
			for j := range n + 3 {
				if j == n {
					if err := w.UntilHeal(); err != nil {
						return err
					}
				}
				if err := think(rng, n); err != nil {
					return err
				}
				key := fmt.Sprintf("k%d", rng.IntN(mapKeys))
				switch p := rng.IntN(10); {
				case p < 5:
					r.write(i+1, m, opPut, key, fmt.Sprintf("c%d-%d", i+1, j))
				case p < 9:
					_ = r.get(i+1, m, key)
				default:
					r.write(i+1, m, opDelete, key, "")
				}
			}
			return nil
		})
	}
	w.Go(func(node transport.NodeID) error { // the checkpointer
		rng := w.Sched.Fork(string(node))
		m, err := open(node)
		if err != nil {
			return err
		}
		rt := m.Object().Runtime()
		cycle := func() error {
			ctx, cancel := w.Context()
			defer cancel()
			if _, err := rt.Checkpoint(ctx); err != nil {
				return err
			}
			if _, err := rt.Trim(ctx); err != nil {
				return err
			}
			r.trims++
			return nil
		}
		for range 2 {
			if err := think(rng, 3); err != nil {
				return err
			}
			_ = cycle() // NB: it may fail under faults
		}
		if err := w.UntilHeal(); err != nil {
			return err
		}
		if err := think(rng, 10); err != nil {
			return err
		}
		if err := healed(w, cycle); err != nil {
			return fmt.Errorf("checkpoint and trim after the heal: %w", err)
		}
		return nil
	})
	readAll := func(client int, m *tango.Map[string, string]) error {
		for k := range mapKeys {
			if err := healed(w, func() error { return r.get(client, m, fmt.Sprintf("k%d", k)) }); err != nil {
				return fmt.Errorf("a read after the heal: %w", err)
			}
		}
		return nil
	}
	w.Go(func(node transport.NodeID) error { // the late joiner
		if err := w.UntilHeal(); err != nil {
			return err
		}
		if err := w.Sleep(fault / 2); err != nil {
			return err
		}
		m, err := open(node)
		if err != nil {
			return err
		}
		return readAll(5, m)
	})
	if err := w.Run(); err != nil {
		return r, err
	}
	// The final reader, once every other client is done.
	w.Go(func(node transport.NodeID) error {
		m, err := open(node)
		if err != nil {
			return err
		}
		return readAll(6, m)
	})
	if err := w.Run(); err != nil {
		return r, err
	}
	if res := checkMapHistory(r.ops); res != porcupine.Ok {
		return r, fmt.Errorf("the history of %d map operations is not linearizable (%s)", len(r.ops), res)
	}
	return r, nil
}

// healedBound bounds how long after the heal an operation may take to
// succeed, attempt after attempt. One attempt may run out of time: faults
// leave holes below the tail (appends that took an address and wrote
// nothing), and a stream reader walking down to its position waits each
// out (a hole-fill wait) before it fills it; the next attempt finds those
// filled.
const healedBound = 5 * time.Minute

// healed runs f, after the heal, until it succeeds or healedBound has
// passed since the heal, and returns its last error.
func healed(w *simworld.World, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if w.Since() > w.Heal+healedBound {
			return fmt.Errorf("still failing %v after the heal: %w", w.Since()-w.Heal, err)
		}
	}
}

// write records a put or a delete.
func (r *mapRun) write(client int, m *tango.Map[string, string], kind int, key, value string) {
	o := mapOp{client: client, kind: kind, key: key, value: value, invoke: r.w.Since()}
	ctx, cancel := r.w.Context()
	defer cancel()
	var err error
	if kind == opPut {
		err = m.Put(ctx, key, value)
	} else {
		err = m.Delete(ctx, key)
	}
	o.ret = r.w.Since()
	switch {
	case err == nil:
	case errors.Is(err, corfu.ErrUnknownOutcome):
		o.unknown = true
	default:
		return // NB: a failed append stored nothing
	}
	r.ops = append(r.ops, o)
}

// get records a get, and returns its error.
func (r *mapRun) get(client int, m *tango.Map[string, string], key string) error {
	o := mapOp{client: client, kind: opGet, key: key, invoke: r.w.Since()}
	ctx, cancel := r.w.Context()
	defer cancel()
	v, ok, err := m.Get(ctx, key)
	if err != nil {
		return err
	}
	o.value, o.ok, o.ret = v, ok, r.w.Since()
	r.ops = append(r.ops, o)
	return nil
}

// TestSimMapLinearizable runs Map clients under the faults of the
// simulator's seeds (sim.Swarm: the whole catalog), with checkpoint and
// trim cycles inside each run and a replica joining after a trim, and
// checks every history with porcupine.
func TestSimMapLinearizable(t *testing.T) {
	seeds := simSeeds()
	var mu sync.Mutex
	ops, trims, trimmed := 0, 0, 0
	failed := sweep(seeds, func(seed uint64) error {
		r, err := runMap(seed, tango.Mutants{})
		if r != nil {
			mu.Lock()
			ops += len(r.ops)
			trims += r.trims
			if r.trims > 0 {
				trimmed++
			}
			mu.Unlock()
		}
		return err
	})
	report(t, "TestSimMapLinearizable", len(seeds), failed)
	t.Logf("%d seeds: %d map operations checked, %d checkpoint-and-trim cycles, in %d seeds", len(seeds), ops, trims, trimmed)
	require.Equal(t, len(seeds), trimmed, "every run trims")
}

// TestSimMapEveryKind is TestSimMapLinearizable with every kind of fault
// at once (simworld.EveryKind on top of each seed's draws).
func TestSimMapEveryKind(t *testing.T) {
	seeds := simSeeds()
	var mu sync.Mutex
	ops, trimmed := 0, 0
	failed := sweep(seeds, func(seed uint64) error {
		r, err := runMap(seed, tango.Mutants{}, simworld.EveryKind)
		if r != nil {
			mu.Lock()
			ops += len(r.ops)
			if r.trims > 0 {
				trimmed++
			}
			mu.Unlock()
		}
		return err
	})
	report(t, "TestSimMapEveryKind", len(seeds), failed)
	t.Logf("%d seeds with every kind of fault: %d map operations checked, trims in %d seeds", len(seeds), ops, trimmed)
	require.Equal(t, len(seeds), trimmed, "every run trims")
}

// TestSimMapMutant: queries that do not sync (stale reads passed off as
// linearizable ones) are caught by the checker within a few seeds.
func TestSimMapMutant(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		if _, err := runMap(seed, tango.Mutants{QueryWithoutSync: true}); err != nil {
			t.Logf("caught by seed %d: %v", seed, err)
			require.ErrorContains(t, err, "not linearizable")
			return
		}
	}
	t.Fatal("the mutant survived 50 seeds")
}

// simLogger returns the logger of a simulated runtime on node: a debug log
// on stderr with -tango.debug, none otherwise.
func simLogger(node string, w *simworld.World) *slog.Logger {
	if !*flagDebug {
		return nil
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(clockHandler{h.WithAttrs([]slog.Attr{slog.String("node", node)}), w.Since})
}

// debugOptions gives the clients of o a debug log with -tango.debug.
func debugOptions(o sim.Options) sim.Options {
	if *flagDebug {
		o.Client.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

// clockHandler adds the virtual time to every record.
type clockHandler struct {
	slog.Handler
	now func() time.Duration
}

func (h clockHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.Duration("virtual", h.now()))
	return h.Handler.Handle(ctx, r)
}
