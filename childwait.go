package mcpool

import (
	"os/exec"
	"time"
)

// childWaiter waits for a stdio child to exit and then reaps it.
//
// Where the system can say whether a child has exited without waiting for
// it (Linux: waitid with WNOHANG and WNOWAIT), the pool polls, and calls
// cmd.Wait only for a child that has exited, which returns at once. It
// never sits in a blocking wait: a goroutine blocked in waitid when the
// garbage collector starts to stop the world can keep the world stopped
// until the child exits (Go 1.26 and 1.27: see docs/reliability.md), and
// a child that exits only on the SIGTERM that this very process must send
// would then never exit. Elsewhere a goroutine waits in cmd.Wait, as
// os/exec users do.
type childWaiter struct {
	cmd *exec.Cmd
	// exited is closed once the child has been reaped (cmd.ProcessState
	// is set).
	exited chan struct{}
	// waited is closed when the goroutine in cmd.Wait returns, with err
	// (where the waiter cannot poll; nil where it polls).
	waited chan struct{}
	err    error
}

func newChildWaiter(cmd *exec.Cmd, exited chan struct{}) *childWaiter {
	w := &childWaiter{cmd: cmd, exited: exited}
	if !pollsChildren {
		w.waited = make(chan struct{})
		go func() {
			w.err = cmd.Wait()
			close(exited)
			close(w.waited)
		}()
	}
	return w
}

// within reports whether the child exits within d.
func (w *childWaiter) within(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	if w.waited != nil {
		select {
		case <-w.waited:
			return true
		case <-timer.C:
			return false
		}
	}
	// Polls from 1 ms, backing off to 20 ms: a child that exits when its
	// stdin closes is seen within a millisecond or two.
	for pause := time.Millisecond; ; pause = min(2*pause, 20*time.Millisecond) {
		if exited, err := childExited(w.cmd.Process.Pid); exited || err != nil {
			return true // an error (not our child any more): reap says what
		}
		select {
		case <-timer.C:
			return false
		case <-time.After(pause):
		}
	}
}

// reap waits for the child (at once, once within has seen it exit) and
// returns how cmd.Wait ended. Call it once.
func (w *childWaiter) reap() error {
	if w.waited != nil {
		<-w.waited
		return w.err
	}
	err := w.cmd.Wait()
	close(w.exited)
	return err
}
