// Command kvmap runs a replicated map on an in-process cluster: several
// clients put keys of one map at once, each through its own replica; then
// every replica reads the map back, and they all agree. A checkpoint and a
// trim follow, and a replica opened afterwards is built from the
// checkpoint.
//
//	go run ./examples/kvmap/cmd/kvmap [-clients 3] [-puts 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/kvmap"
)

const stream corfu.StreamID = 7

func main() {
	clients := flag.Int("clients", 3, "clients, each with its own replica")
	puts := flag.Int("puts", 20, "puts per client")
	keys := flag.Int("keys", 5, "distinct keys")
	flag.Parse()
	if *clients < 1 || *puts < 0 || *keys < 1 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err := corfutest.New(corfutest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	open := func() *kvmap.Map {
		c, err := corfu.Open(ctx, cluster.Config())
		if err != nil {
			log.Fatal(err)
		}
		return kvmap.New(c, stream)
	}
	replicas := make([]*kvmap.Map, *clients)
	var wg sync.WaitGroup
	for i := range replicas {
		replicas[i] = open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range *puts {
				if err := replicas[i].Put(ctx, fmt.Sprintf("k%d", j%*keys), fmt.Sprintf("client%d-%d", i, j)); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	want := dump(ctx, replicas[0], *keys)
	for i, m := range replicas[1:] {
		if got := dump(ctx, m, *keys); got != want {
			log.Fatalf("replica %d disagrees:\n%s\nreplica 0:\n%s", i+1, got, want)
		}
	}
	fmt.Printf("%d replicas agree after %d puts:\n%s", len(replicas), *clients**puts, want)

	at, err := replicas[0].Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	mark, err := replicas[0].Trim(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fresh := open()
	if got := dump(ctx, fresh, *keys); got != want {
		log.Fatalf("a replica built after the trim disagrees:\n%s", got)
	}
	fmt.Printf("checkpoint as of address %d, log trimmed below %d; a new replica, built from the checkpoint, agrees\n", at, mark)
}

// dump returns the map's keys and values, one per line, in key order.
func dump(ctx context.Context, m *kvmap.Map, keys int) string {
	var lines []string
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		v, ok, err := m.Get(ctx, key)
		if err != nil {
			log.Fatal(err)
		}
		if ok {
			lines = append(lines, fmt.Sprintf("  %s = %s\n", key, v))
		}
	}
	sort.Strings(lines)
	s := ""
	for _, l := range lines {
		s += l
	}
	return s
}
