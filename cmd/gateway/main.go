// Command gateway serves the Microsoft Tunnel server update gateway. With --demo it runs
// against an in-process Graph and Entra ID simulator and needs no tenant.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultGCPercent is the collector's goal when GOGC is not set: the heap may grow 80 % past
// what is live at each collection instead of Go's 100 %. With a thousand callers' connections
// open, most of what is live is net/http's per-connection buffers and stacks, and the peak
// resident set follows that growth: loadbench measured 59 to 66 MiB at Go's default against
// the 64 MiB target, and 56 to 59 MiB at 80, for 3 to 6 µs more CPU per request
// (docs/benchmarks.md). GOGC, when set, wins, as it always does in Go.
const defaultGCPercent = 80

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
