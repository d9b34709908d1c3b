package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// The library may name its setting (Config.ConnectTimeout) or not; either
// way the command's message names the flag, once, and errors.Is still sees
// the cause.
func TestExplainConnect(t *testing.T) {
	f := &targetFlags{connectTimeout: 300 * time.Millisecond}
	for _, cause := range []error{
		fmt.Errorf("no answer within ConnectTimeout (300ms): %w", context.Canceled),
		fmt.Errorf("no answer within ConnectTimeout (300ms; raise Config.ConnectTimeout if the server is slow to start): %w", context.DeadlineExceeded),
	} {
		err := explainConnect(context.Background(), &mcpool.ConnectError{Target: "x", Cause: cause}, f, 0)
		if msg := err.Error(); strings.Count(msg, "--connect-timeout") != 1 || strings.Count(msg, "Config.") != 0 {
			t.Errorf("%q: want --connect-timeout named once, and no Config field", msg)
		}
		if !errors.Is(err, mcpool.ErrConnectFailed) || !errors.Is(err, cause) {
			t.Errorf("%v: the cause is lost", err)
		}
	}
	other := &mcpool.ConnectError{Target: "x", Cause: errors.New("connection refused")}
	if err := explainConnect(context.Background(), other, f, 0); err != error(other) {
		t.Errorf("a refused connect became %v", err)
	}
	// When the command's deadline ended the wait, the library's words are
	// still translated, and nothing is added.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	named := &mcpool.ConnectError{Target: "x", Cause: fmt.Errorf("gave up (%w); the last: raise Config.ConnectTimeout", context.DeadlineExceeded)}
	if msg := explainConnect(done, named, f, 0).Error(); strings.Count(msg, "--connect-timeout") != 1 || strings.Contains(msg, "Config.") {
		t.Errorf("%q: want the flag named once", msg)
	}
	plain := &mcpool.ConnectError{Target: "x", Cause: context.DeadlineExceeded}
	if err := explainConnect(done, plain, f, 0); err != error(plain) {
		t.Errorf("after the command's deadline %v became %v", plain, err)
	}
}
