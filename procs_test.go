package mcpool_test

import (
	"testing"

	"github.com/mcpool/mcpool/internal/proctest"
)

// children returns the pids of this process's children (zombies included:
// a child not yet reaped still counts) whose command line contains substr.
func children(t *testing.T, substr string) []int {
	t.Helper()
	pids, err := proctest.Children(substr)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}
