// Command bank runs the replicated bank of package bank on the simulator,
// under faults, and checks that its total never changes and that no
// committed transfer is lost:
//
//	go run ./examples/bank/cmd/bank              # seed 1, with its report
//	go run ./examples/bank/cmd/bank -seed 42     # another seed
//	go run ./examples/bank/cmd/bank -seeds 1000  # seeds 1..1000 on every core
//
// It exits 1 if a check fails, 2 for bad flags.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/corfulog/corfu/examples/bank"
	"github.com/corfulog/corfu/sim"
)

func main() {
	seed := flag.Uint64("seed", 1, "the seed of one run")
	seeds := flag.Int("seeds", 0, "run seeds 1..N instead of one")
	accounts := flag.Int("accounts", 4, "accounts")
	tellers := flag.Int("tellers", 3, "clients that transfer")
	flag.Parse()
	if *seeds < 0 || *accounts < 2 || *tellers < 1 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o := bank.SimOptions{Accounts: *accounts, Tellers: *tellers}
	if *seeds == 0 {
		rep, err := bank.Simulate(*seed, o)
		if rep != nil {
			report(rep)
		}
		if err != nil {
			fmt.Printf("FAIL: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("PASS: the total never changed; every committed transfer is in the ledger, and nothing else")
		return
	}
	var (
		mu     sync.Mutex
		failed []uint64
		total  bank.Report
		next   = make(chan uint64)
		wg     sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				rep, err := bank.Simulate(s, o)
				mu.Lock()
				if err != nil {
					failed = append(failed, s)
					fmt.Printf("seed %d: FAIL: %v\n", s, err)
				}
				if rep != nil {
					total.Acked += rep.Acked
					total.Unknown += rep.Unknown
					total.Trims += rep.Trims
				}
				mu.Unlock()
			}
		}()
	}
	for s := 1; s <= *seeds; s++ {
		next <- uint64(s)
	}
	close(next)
	wg.Wait()
	slices.Sort(failed)
	fmt.Printf("%d seeds: %d transfers committed, %d of unknown outcome, %d checkpoint-and-trim cycles\n",
		*seeds, total.Acked, total.Unknown, total.Trims)
	if len(failed) > 0 {
		fmt.Printf("FAIL: %d seeds: %v\n", len(failed), failed)
		os.Exit(1)
	}
	fmt.Println("PASS")
}

func report(rep *bank.Report) {
	fmt.Printf("seed:         %d\n", rep.Seed)
	fmt.Printf("transfers:    %d committed, %d of unknown outcome, %d declined, %d failed\n", rep.Acked, rep.Unknown, rep.Declined, rep.Failed)
	fmt.Printf("audits:       %d (read-only transactions and snapshots)\n", rep.Audits)
	fmt.Printf("trims:        %d checkpoint-and-trim cycles\n", rep.Trims)
	fmt.Printf("final:        total %d, %d ledger entries\n", rep.Total, rep.Ledger)
	kinds := make([]string, 0, len(rep.Faults))
	for k := range rep.Faults {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	fmt.Print("faults:      ")
	for _, k := range kinds {
		fmt.Printf(" %s %d", k, rep.Faults[sim.FaultKind(k)])
	}
	fmt.Printf("\nvirtual time: %v\n", rep.VirtualTime)
}
