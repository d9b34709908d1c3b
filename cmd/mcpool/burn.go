package main

import (
	"runtime"
	"sync/atomic"
	"time"
)

// burnSink keeps the compiler from dropping burnCPU's arithmetic.
var burnSink atomic.Uint64

// burnCPU computes for d of this thread's CPU time (the clock where the
// system cannot tell): the fixed cost of a call to a server that computes
// per call. Counting CPU time rather than the clock, a call descheduled by
// other calls on the same core (demo-server --gomaxprocs 1) still costs
// the server all of d.
func burnCPU(d time.Duration) {
	runtime.LockOSThread() // the thread's clock counts this goroutine alone
	defer runtime.UnlockOSThread()
	start, ok := threadCPU()
	wall := time.Now()
	x := burnSink.Load()
	for {
		for i := range 2000 {
			x = x*6364136223846793005 + uint64(i)
		}
		if now, _ := threadCPU(); ok && now-start >= d || !ok && time.Since(wall) >= d {
			break
		}
	}
	burnSink.Store(x)
}
