package mcpool

import "golang.org/x/sys/unix"

// pollsChildren: childExited can tell.
const pollsChildren = true

// childExited reports whether the child pid has exited, leaving it to be
// reaped (WNOWAIT), without waiting (WNOHANG).
func childExited(pid int) (bool, error) {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return false, err
	}
	// Linux zeroes info when the child is not waitable yet.
	return info.Signo != 0, nil
}
