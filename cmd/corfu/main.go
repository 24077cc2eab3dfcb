// Command corfu is the CORFU shared log's one binary. Subcommands:
//
//	corfu demo [flags]         run an in-process cluster on the simulator and check it
//	corfu sim [flags]          replay one simulated run (--seed) or sweep many (--seeds)
//	corfu scale [flags]        the scaling experiment: throughput against units, in the simulator
//	corfu serve [flags]        run one node of a cluster (units, sequencer, layout server) over TCP
//	corfu cluster up [flags]   start a local cluster of corfu serve processes on 127.0.0.1
//	corfu bench [flags]        measure appends/s and latency (or the sequencer's tokens/s)
//	corfu append|read|tail|trim|stream|layout|status|reconfigure [flags]
//	                           the client verbs, over TCP, on a cluster file's cluster
//
// Run "corfu <subcommand> -h" for a subcommand's flags.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process's exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "demo":
		return demo(args[1:], stdout, stderr)
	case "sim":
		return simCmd(args[1:], stdout, stderr)
	case "scale":
		return scaleCmd(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "cluster":
		return clusterCmd(args[1:], os.Stdin, stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "append":
		return appendCmd(args[1:], os.Stdin, stdout, stderr)
	case "read":
		return readCmd(args[1:], os.Stdin, stdout, stderr)
	case "tail":
		return tailCmd(args[1:], os.Stdin, stdout, stderr)
	case "trim":
		return trimCmd(args[1:], os.Stdin, stdout, stderr)
	case "stream":
		return streamCmd(args[1:], os.Stdin, stdout, stderr)
	case "layout":
		return layoutCmd(args[1:], os.Stdin, stdout, stderr)
	case "status":
		return statusCmd(args[1:], os.Stdin, stdout, stderr)
	case "reconfigure":
		return reconfigureCmd(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "corfu: unknown subcommand %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: corfu <subcommand> [flags]

subcommands:
  demo    run an in-process cluster on the deterministic simulator: several
          clients append and read concurrently, then every invariant is checked
  sim     replay one simulated run from its seed (--seed N, --trace FILE.html
          for a timeline) or sweep seeds 1..N in parallel (--seeds N)
  scale   throughput against units in the simulator: docs/scaling.csv and .png
  serve   run one node of a cluster over TCP: --cluster FILE --node NAME
          --data DIR (--init on its first start); /metrics with --http ADDR
  cluster up
          start a local cluster of corfu serve processes on 127.0.0.1, with
          data directories under --dir; Ctrl-C stops it
  bench   measure appends/s, MB/s and p50/p99/p999 latency on a cluster it
          starts in this process (or on -cluster FILE's): one result line

client verbs (each takes --cluster FILE, and --json for scripts):
  append [--stream IDS] [DATA ...]   one entry per argument, or per stdin line
  read ADDR | FROM..TO               print entries
  tail                               print the log's tail
  trim [--prefix] ADDR               trim ADDR (or everything below it)
  stream read|follow ID              a stream's entries (follow: until Ctrl-C)
  layout show                        the current projection
  status                             each node's roles, epoch, tail, health
  reconfigure [--replace OLD=NEW | --move-sequencer NODE]
`)
}
