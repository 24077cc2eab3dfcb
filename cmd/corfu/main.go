// Command corfu is the CORFU shared log's one binary. Subcommands:
//
//	corfu demo [flags]   run an in-process cluster on the simulator and check it
//	corfu sim [flags]    replay one simulated run (--seed) or sweep many (--seeds)
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
`)
}
