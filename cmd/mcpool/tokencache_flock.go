//go:build unix

package main

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on the file at path (created with mode
// 0600 if missing), waiting for other processes that hold it. The lock
// file stays: removing it would let two processes lock different files.
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
