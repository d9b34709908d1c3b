//go:build !linux

package main

import "time"

// threadCPU reports that this system's thread CPU time is not read:
// burnCPU counts the clock instead.
func threadCPU() (time.Duration, bool) { return 0, false }
