package sim_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
)

func TestCheckLinearizable(t *testing.T) {
	tests := []struct {
		name    string
		ops     []rec
		want    porcupine.CheckResult
		illegal []storage.Address
	}{
		{name: "linearizable history passes", want: porcupine.Ok, ops: correct()},
		{name: "empty history passes", want: porcupine.Ok},
		{name: "concurrent reads either side of the write", want: porcupine.Ok, ops: []rec{
			appendOp(0, 0, 10, 1, "x", sim.OK),
			readOp(1, 1, 9, 1, "x", sim.OK),
			readOp(2, 2, 11, 1, "", sim.Unwritten),
		}},
		{name: "stale read after a completed write fails", want: porcupine.Illegal, illegal: []storage.Address{3}, ops: []rec{
			appendOp(0, 0, 10, 3, "x", sim.OK),
			appendOp(0, 11, 20, 4, "y", sim.OK),
			readOp(1, 11, 12, 3, "", sim.Unwritten),
		}},
		{name: "read going back to unwritten fails", want: porcupine.Illegal, illegal: []storage.Address{2}, ops: []rec{
			appendOp(0, 0, 100, 2, "x", sim.OK),
			readOp(1, 10, 11, 2, "x", sim.OK),
			readOp(2, 12, 13, 2, "", sim.Unwritten),
		}},
		{name: "unknown append whose value is seen passes", want: porcupine.Ok, ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			readOp(1, 5, 6, 7, "", sim.Unwritten),
			readOp(1, 50, 60, 7, "x", sim.OK),
			readOp(2, 70, 80, 7, "x", sim.OK),
		}},
		{name: "unknown append seen then unseen fails", want: porcupine.Illegal, illegal: []storage.Address{7}, ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			readOp(1, 50, 60, 7, "x", sim.OK),
			readOp(2, 70, 80, 7, "", sim.Unwritten),
		}},
		{name: "unseen unknown append is dropped", want: porcupine.Ok, ops: []rec{
			appendOp(0, 0, 10, 7, "x", sim.Unknown),
			appendOp(0, 0, 10, 8, "y", sim.Pending),
			readOp(1, 50, 60, 7, "", sim.Unwritten),
		}},
		{name: "failed append cannot be read", want: porcupine.Illegal, illegal: []storage.Address{4}, ops: []rec{
			appendOp(0, 0, 10, 4, "x", sim.Failed),
			readOp(1, 50, 60, 4, "x", sim.OK),
		}},
		{name: "junk read is a fill", want: porcupine.Ok, ops: []rec{
			readOp(1, 0, 10, 5, "", sim.Junk),
			fillOp(2, 1, 2, 5, sim.Junk),
			appendOp(0, 0, 20, 0, "x", sim.Unknown),
			readOp(1, 30, 31, 5, "", sim.Junk),
		}},
		{name: "junk then data fails", want: porcupine.Illegal, illegal: []storage.Address{5}, ops: []rec{
			appendOp(0, 0, 10, 0, "x", sim.Unknown),
			readOp(1, 20, 21, 5, "", sim.Junk),
			readOp(1, 30, 31, 5, "x", sim.OK),
		}},
		{name: "fill over an acked append fails", want: porcupine.Illegal, illegal: []storage.Address{5}, ops: []rec{
			appendOp(0, 0, 10, 5, "x", sim.OK),
			fillOp(1, 20, 21, 5, sim.Junk),
		}},
		{name: "two values at one address fail", want: porcupine.Illegal, illegal: []storage.Address{5, 6}, ops: []rec{
			appendOp(0, 0, 10, 5, "x", sim.OK),
			appendOp(1, 0, 10, 5, "y", sim.OK),
			appendOp(0, 20, 30, 6, "z", sim.OK),
			readOp(1, 31, 32, 6, "x", sim.OK),
			readOp(1, 31, 32, 7, "z", sim.OK), // a duplicate (S5), not a register violation
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sim.CheckLinearizable(history(tt.ops...), 0)
			if r.Result != tt.want {
				t.Fatalf("Result = %s, want %s", r.Result, tt.want)
			}
			if !slices.Equal(r.Illegal, tt.illegal) {
				t.Errorf("Illegal = %v, want %v", r.Illegal, tt.illegal)
			}
			vs := r.Violations()
			if len(vs) != len(tt.illegal) {
				t.Errorf("Violations() = %v, want one per illegal address", vs)
			}
			if r.Result == porcupine.Illegal {
				path := filepath.Join(t.TempDir(), "history.html")
				if err := porcupine.VisualizePath(sim.LogModel(), r.Info, path); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("visualization not written: %v", err)
				}
			}
		})
	}
}

func TestLinearizabilityTimeoutIsNoPass(t *testing.T) {
	r := sim.LinearizabilityResult{Result: porcupine.Unknown, Ops: 10, Addrs: 2}
	vs := r.Violations()
	if len(vs) != 1 || vs[0].Invariant != "LinUnknown" {
		t.Fatalf("a timed-out check gave %v, want one LinUnknown violation", vs)
	}
}

func TestCheckLinearizableLargeHistory(t *testing.T) {
	n := 10_000 // 40k operations, 30k of them register operations
	if testing.Short() {
		n = 1_000
	}
	r := sim.CheckLinearizable(bigHistory(n), 0)
	if r.Result != porcupine.Ok {
		t.Fatalf("Result = %s, Illegal = %v", r.Result, r.Illegal[:min(len(r.Illegal), 10)])
	}
	if r.Addrs != n || r.Ops != 3*n {
		t.Errorf("checked %d operations on %d addresses, want %d on %d", r.Ops, r.Addrs, 3*n, n)
	}
}

func BenchmarkCheckLinearizable(b *testing.B) {
	h := bigHistory(25_000) // 100k operations
	for b.Loop() {
		if r := sim.CheckLinearizable(h, 0); r.Result != porcupine.Ok {
			b.Fatal(r.Result)
		}
	}
}
