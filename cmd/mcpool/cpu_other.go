//go:build !unix

package main

import "time"

// processCPU returns 0: bench reports CPU per call on Unix systems only
// (getrusage).
func processCPU() time.Duration { return 0 }
