//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user plus system) that this process has
// used so far, or 0 where the system cannot tell. Child processes (stdio
// servers) are not counted: only what the client itself costs.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
