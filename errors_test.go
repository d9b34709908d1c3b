package mcpool_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// Every error the pool returns says "mcpool: " once, at its start, however
// deeply its own errors are wrapped: here the breaker's UnavailableError
// around a ConnectError, from a real port that refuses connections.
func TestErrorsSayMcpoolOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connects are refused
	p := newPool(t, mcpool.Config{
		URL:              "http://" + addr + "/mcp",
		BreakerOpenAfter: 50 * time.Millisecond,
		BackoffInitial:   time.Millisecond,
		BackoffMax:       5 * time.Millisecond,
		Logger:           quiet,
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := p.Acquire(ctx)
		cancel()
		if err == nil {
			t.Fatal("Acquire succeeded against a closed port")
		}
		if n := strings.Count(err.Error(), "mcpool: "); n != 1 || !strings.HasPrefix(err.Error(), "mcpool: ") {
			t.Fatalf("error says \"mcpool: \" %d times: %v", n, err)
		}
		if errors.Is(err, mcpool.ErrServerUnavailable) {
			if !errors.Is(err, mcpool.ErrConnectFailed) {
				t.Fatalf("UnavailableError does not unwrap to the ConnectError: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breaker never opened; last error: %v", err)
		}
	}
}

func TestWrappedErrorMessages(t *testing.T) {
	connect := &mcpool.ConnectError{Target: "http://127.0.0.1:1/mcp", Cause: mcpool.ErrUnauthorized}
	for _, err := range []error{
		&mcpool.UnavailableError{Failures: 5, Cause: connect},
		&mcpool.SessionLostError{Tool: "t", Cause: connect},
		&mcpool.RateLimitedError{Cause: connect},
		connect,
	} {
		if n := strings.Count(err.Error(), "mcpool: "); n != 1 {
			t.Errorf("%T says \"mcpool: \" %d times: %v", err, n, err)
		}
	}
}
