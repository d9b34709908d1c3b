package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// A server that is down is logged once at warning level however often the
// pool retries (backoff, then one probe per breaker cool-down), the
// breaker's opening once, and its recovery once: not a line per retry.
func TestConnectFailuresLoggedOnce(t *testing.T) {
	port := freePort(t)
	var mu sync.Mutex
	var logs bytes.Buffer
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	var stopServer func()
	t.Cleanup(func() { // after the pool's Close (cleanups run last first)
		if stopServer != nil {
			stopServer()
		}
	})
	p := newPool(t, mcpool.Config{
		URL:              fmt.Sprintf("http://127.0.0.1:%d/mcp", port),
		Logger:           slog.New(slog.NewTextHandler(lockedWriter{&logs, &mu}, nil)), // info and above
		FailureThreshold: 2, BreakerOpenAfter: -1, BreakerCooldown: 20 * time.Millisecond,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = p.Start(ctx) }() // fails once the breaker opens; the pool goes on probing
	eventually(t, "ten failed connects", func() bool { return p.Stats().ConnectErrors >= 10 })
	got := read()
	if n := strings.Count(got, "connect failed"); n != 1 {
		t.Errorf("%d lines say a connect failed, want 1:\n%s", n, got)
	}
	if n := strings.Count(got, "circuit breaker open (was closed)"); n != 1 || strings.Contains(got, "half-open") {
		t.Errorf("the breaker's turns were logged %d times (want its opening once, its probes not):\n%s", n, got)
	}

	// The server comes up on its port.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewUnstartedServer(demoserver.Handler(srv, false, 0))
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	stopServer = func() { closeServer(ts, srv) }
	eventually(t, "the pool to connect", func() bool { return p.Stats().Sessions > 0 })
	eventually(t, "the recovery to be logged", func() bool {
		return strings.Contains(read(), "connected again") && strings.Contains(read(), "circuit breaker closed")
	})
	if n := strings.Count(read(), "connected again"); n != 1 {
		t.Errorf("the recovery was logged %d times:\n%s", n, read())
	}
}

// A failure no retry cures (the program does not exist) is logged as such,
// once: not as a wait with backoff.
func TestMisconfiguredLoggedAsSuch(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	p := newPool(t, mcpool.Config{
		Command: &mcpool.Command{Path: "/nonexistent/mcp-server"},
		Logger:  slog.New(slog.NewTextHandler(lockedWriter{&logs, &mu}, nil)), // info and above
	})
	if err := p.Start(context.Background()); !errors.Is(err, mcpool.ErrMisconfigured) {
		t.Fatalf("Start: %v, want ErrMisconfigured", err)
	}
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	// Logged by the connect's goroutine, which may finish after Start
	// has returned.
	eventually(t, "the failure to be logged", func() bool { return strings.Contains(read(), "connect failed") })
	if got := read(); strings.Count(got, "connect failed, and retrying will not cure it") != 1 || strings.Contains(got, "retrying with backoff") {
		t.Errorf("want one line saying retrying will not cure it:\n%s", got)
	}
}
