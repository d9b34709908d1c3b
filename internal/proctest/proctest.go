// Package proctest lists a process's children from /proc, so that tests can
// check that no child process (running, or exited but not reaped) is left.
package proctest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Children returns the pids of this process's children whose command line
// contains substr ("" matches all). Zombies (exited, not yet reaped) always
// count, whatever substr: their command line is gone, and an unreaped child
// is exactly what the tests look for. It fails where there is no /proc.
func Children(substr string) ([]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	if len(stats) == 0 {
		return nil, errors.New("no /proc: cannot list child processes")
	}
	me := os.Getpid()
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited while we looked
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != me {
			continue
		}
		dir := filepath.Dir(path)
		if f[0] != "Z" && substr != "" {
			cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
			if !bytes.Contains(cmdline, []byte(substr)) {
				continue
			}
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		pids = append(pids, pid)
	}
	return pids, nil
}
