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
		err := explainConnect(context.Background(), &mcpool.ConnectError{Target: "x", Cause: cause}, f)
		if msg := err.Error(); strings.Count(msg, "--connect-timeout") != 1 || strings.Count(msg, "Config.") != 0 {
			t.Errorf("%q: want --connect-timeout named once, and no Config field", msg)
		}
		if !errors.Is(err, mcpool.ErrConnectFailed) || !errors.Is(err, cause) {
			t.Errorf("%v: the cause is lost", err)
		}
	}
	other := &mcpool.ConnectError{Target: "x", Cause: errors.New("connection refused")}
	if err := explainConnect(context.Background(), other, f); err != error(other) {
		t.Errorf("a refused connect became %v", err)
	}
}
