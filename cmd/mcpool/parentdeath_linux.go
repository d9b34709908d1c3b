package main

import (
	"os/exec"
	"syscall"
)

// endWithParent has the kernel kill cmd's process when this one ends,
// however it ends: bench --matrix stops its demo server itself on every
// exit it sees (a signal it handles included), but not when it is killed
// outright (SIGKILL, or SIGQUIT's stack dump), which would leave the server
// listening. The signal is tied to the thread that starts the child
// (prctl(2), PR_SET_PDEATHSIG); the Go runtime keeps its threads, apart
// from those of goroutines that exit while locked to one, which this
// command does not do.
func endWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
