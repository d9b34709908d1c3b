package mcpool

import (
	"errors"
	"os/exec"
	"testing"
	"time"
)

func startChild(t *testing.T, args ...string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, make(chan struct{})
}

// A child that exits is seen, then reaped, with its exit status.
func TestChildWaiterSeesAnExit(t *testing.T) {
	cmd, exited := startChild(t, "sh", "-c", "exit 3")
	w := newChildWaiter(cmd, exited)
	if !w.within(10 * time.Second) {
		t.Fatal("the child's exit was not seen within 10s")
	}
	var ee *exec.ExitError
	if err := w.reap(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("reap: %v, want exit status 3", err)
	}
	select {
	case <-exited:
	default:
		t.Fatal("exited not closed after reap")
	}
	if cmd.ProcessState == nil {
		t.Fatal("ProcessState not set after reap")
	}
}

// A child still running is not reported as exited (nor reaped: the kill
// below still reaches it), and its end is seen once it comes.
func TestChildWaiterWaitsForARunningChild(t *testing.T) {
	cmd, exited := startChild(t, "sleep", "30")
	w := newChildWaiter(cmd, exited)
	if w.within(50 * time.Millisecond) {
		t.Fatal("a running child reported as exited")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !w.within(10 * time.Second) {
		t.Fatal("the killed child's exit was not seen within 10s")
	}
	if err := w.reap(); err == nil || cmd.ProcessState.Success() {
		t.Fatalf("reap of a killed child: %v", err)
	}
}
