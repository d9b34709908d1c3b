package main

import (
	"os"
	"runtime/debug"
)

// gatewayGCPercent is the garbage collector's target (GOGC) of the gateway
// command when $GOGC is not set. The go-sdk (v1.8.0) decodes every JSON-RPC
// message with a fresh decoder whose buffer is 32 KiB, so a gateway, being
// both a server and a client, allocates about a megabyte per relayed call
// while its live heap stays a few megabytes; at Go's default of 100 it then
// spends about half its CPU collecting. 400 lets the heap grow to five times
// the live data between collections: measured on 2 cores, 1.1–1.45× the
// calls/s of the default for 15–20 MiB more resident memory under load
// (BENCHMARKS.md, "a cheaper hop, re-measured").
// $GOGC and $GOMEMLIMIT still apply as the Go runtime documents them.
const gatewayGCPercent = 400

// tuneGatewayGC sets gatewayGCPercent unless $GOGC is set (empty is unset,
// as for the runtime), and returns the
// function that restores the previous setting (the command runs in process
// in tests).
func tuneGatewayGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(gatewayGCPercent)
	return func() { debug.SetGCPercent(old) }
}
