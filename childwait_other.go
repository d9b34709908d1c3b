//go:build !linux

package mcpool

// pollsChildren: this system cannot tell whether a child has exited
// without waiting for it; the waiter waits in cmd.Wait.
const pollsChildren = false

// childExited is not called where pollsChildren is false.
func childExited(pid int) (bool, error) { return false, nil }
