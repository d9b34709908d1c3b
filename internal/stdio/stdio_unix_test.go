//go:build unix

package stdio

import (
	"errors"
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockingPipe returns a pipe in blocking mode, as a parent process hands
// its child's stdin and stdout (os.Pipe's are non-blocking already).
func blockingPipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// The point of the package: on pipes, stdin is read through the poller,
// where a read waits without a blocking system call. Only a polled file
// takes a read deadline.
func TestPipesAreReadThroughThePoller(t *testing.T) {
	inR, inW := blockingPipe(t)
	outR, outW := blockingPipe(t)
	peerIn, peerOut := os.NewFile(uintptr(inW), "peer-in"), os.NewFile(uintptr(outR), "peer-out")
	defer peerIn.Close()
	defer peerOut.Close()

	in, out, ok := pollable(inR, outW)
	if !ok {
		t.Fatal("pollable refused two pipes")
	}
	defer in.Close()
	defer out.Close()

	if err := in.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("SetReadDeadline on stdin: %v (not polled)", err)
	}
	if _, err := in.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if err := in.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// Both directions still carry the peer's lines.
	if _, err := peerIn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("stdin read %q, %v", buf, err)
	}
	if _, err := out.Write([]byte("pong\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peerOut, buf); err != nil || string(buf) != "pong\n" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
}

// A redirected file (or a terminal) is left to mcp.StdioTransport: the
// poller does not take regular files, and a terminal's mode is shared with
// the user's shell.
func TestFilesAreLeftAlone(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/requests.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outR, outW := blockingPipe(t)
	peer, out := os.NewFile(uintptr(outR), "peer"), os.NewFile(uintptr(outW), "out")
	defer peer.Close()
	defer out.Close()
	if _, _, ok := pollable(int(f.Fd()), outW); ok {
		t.Fatal("pollable took a regular file")
	}
	nb, err := nonblocking(outW)
	if err != nil || nb {
		t.Fatalf("the pipe beside the file was put in non-blocking mode (%v, %v)", nb, err)
	}
}

func nonblocking(fd int) (bool, error) {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 {
		return false, errno
	}
	return flags&syscall.O_NONBLOCK != 0, nil
}

// The files stay open when the caller keeps no reference to them (an
// *os.File that the collector frees closes its descriptor, and stdout's
// descriptor would be reused by the next file the process opens).
func TestFilesOutliveTheirReferences(t *testing.T) {
	inR, inW := blockingPipe(t)
	outR, outW := blockingPipe(t)
	defer syscall.Close(inW)
	defer syscall.Close(outR)
	if _, _, ok := pollable(inR, outW); !ok {
		t.Fatal("pollable refused two pipes")
	}
	runtime.GC()
	runtime.GC()
	for _, fd := range []int{inR, outW} {
		if _, err := nonblocking(fd); err != nil {
			t.Fatalf("descriptor %d closed once its file was unreferenced: %v", fd, err)
		}
	}
	held.mu.Lock()
	for _, f := range held.files {
		f.Close()
	}
	held.files = nil
	held.mu.Unlock()
}
