package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a child's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cliProc is the command running as a process of its own.
type cliProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	exited         time.Time
}

// execCLI starts the command as a real process (this test binary, see
// TestMain) so that tests can send it signals and time its exit.
func execCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	return execCLIWith(t, nil, args...)
}

// execCLIWith is execCLI with a func that may set up the command (its
// standard input and output, say) before it starts.
func execCLIWith(t *testing.T, prepare func(*exec.Cmd), args ...string) *cliProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &cliProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	selfCommand(t)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if prepare != nil {
		prepare(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process.
func (p *cliProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("sending %v: %v", sig, err)
	}
}

// waitStderr waits until the process has written want on stderr.
func (p *cliProc) waitStderr(want string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			p.t.Fatalf("exited without writing %q on stderr; stderr:\n%s", want, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q on stderr after 30s; stderr:\n%s", want, p.stderr.String())
		}
	}
}

// wait waits for the process to exit (failing the test after a minute)
// and returns its exit status and how long after since it exited.
func (p *cliProc) wait(since time.Time) (code int, took time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.t.Fatalf("still running a minute later; stderr:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode(), p.exited.Sub(since)
}

func (p *cliProc) result() cliResult {
	return cliResult{p.cmd.ProcessState.ExitCode(), p.stdout.String(), p.stderr.String()}
}
