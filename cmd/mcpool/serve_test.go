package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// startDemoServer runs "demo-server --http 127.0.0.1:0" in process until the
// returned stop is called, and returns its URL from the line it prints once
// listening. stop returns the command's exit status.
func startDemoServer(t *testing.T) (url string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	status := make(chan int, 1)
	go func() {
		status <- runContext(ctx, []string{"demo-server", "--http", "127.0.0.1:0"}, io.Discard, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	drained := make(chan struct{})
	go func() {
		// Anything else it writes must not block it.
		io.Copy(io.Discard, pr)
		close(drained)
	}()
	stop = func() int {
		cancel()
		defer func() { <-drained }()
		select {
		case code := <-status:
			return code
		case <-time.After(2 * shutdownTimeout):
			t.Fatal("demo-server did not stop after its context was cancelled")
			return -1
		}
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "serving MCP on ")
	if err != nil || !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, demoPath) {
		stop()
		t.Fatalf("demo-server printed %q (%v), want \"serving MCP on http://127.0.0.1:PORT/mcp\"", line, err)
	}
	return url, stop
}

func TestDemoServerHTTP(t *testing.T) {
	url, stop := startDemoServer(t)
	r := runCLI(t, "call", "echo", `{"message":"served"}`, "--url", url)
	if r.code != 0 {
		stop()
		t.Fatalf("call: status %d: %s", r.code, r.stderr)
	}
	if res := decodeCall(t, r); len(res.Content) != 1 || res.Content[0].Text != "served" {
		t.Errorf("call result %+v, want text \"served\"", res)
	}
	if code := stop(); code != 0 {
		t.Errorf("demo-server exit status %d, want 0", code)
	}
}

func TestDemoServerStopsWithClientsConnected(t *testing.T) {
	// A connected session holds a standalone SSE stream (a GET that never
	// ends by itself); shutdown must end it instead of waiting it out.
	url, stop := startDemoServer(t)
	p, err := mcpool.New(mcpool.Config{URL: url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Start(context.Background()); err != nil {
		stop()
		t.Fatal(err)
	}
	start := time.Now()
	if code := stop(); code != 0 {
		t.Errorf("demo-server exit status %d, want 0", code)
	}
	if d := time.Since(start); d >= shutdownTimeout {
		t.Errorf("shutdown took %v: the SSE stream held it to its deadline", d)
	}
}
