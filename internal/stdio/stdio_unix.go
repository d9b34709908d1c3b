//go:build unix

package stdio

import (
	"os"
	"sync"
	"syscall"
)

// pollable returns files for the descriptors in and out that the runtime
// polls, when both are pipes or sockets.
func pollable(in, out int) (r, w *os.File, ok bool) {
	if !pipeOrSocket(in) || !pipeOrSocket(out) {
		return nil, nil, false
	}
	if syscall.SetNonblock(in, true) != nil || syscall.SetNonblock(out, true) != nil {
		return nil, nil, false
	}
	// os.NewFile registers a non-blocking descriptor with the poller.
	r, w = os.NewFile(uintptr(in), "/dev/stdin"), os.NewFile(uintptr(out), "/dev/stdout")
	hold(r, w)
	return r, w, true
}

// held keeps the files pollable returned reachable for the life of the
// process: an *os.File that the collector finds unreachable closes its
// descriptor, and descriptor 1 closed behind os.Stdout's back would be
// reused by the next file or socket the process opens.
var held struct {
	mu    sync.Mutex
	files []*os.File
}

func hold(files ...*os.File) {
	held.mu.Lock()
	held.files = append(held.files, files...)
	held.mu.Unlock()
}

// pipeOrSocket reports whether fd is a pipe or a socket: descriptors the
// poller takes (not a regular file, which epoll refuses, nor a terminal,
// whose mode the user's shell shares).
func pipeOrSocket(fd int) bool {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return false
	}
	mode := st.Mode & syscall.S_IFMT
	return mode == syscall.S_IFIFO || mode == syscall.S_IFSOCK
}
