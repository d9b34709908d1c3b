package main

import "time"

// cpuPerCall is the process's CPU time spent during a mode, divided by
// the calls made.
func (r *modeRun) cpuPerCall() time.Duration {
	if r.calls == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.calls)
}
