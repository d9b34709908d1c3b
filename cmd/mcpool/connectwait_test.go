package main

import (
	"strings"
	"testing"
)

// wantWaitThenError checks the stderr of a command that waited for a server
// that is down: one line saying it waits, for what and how long, then the
// error, which mentions each of mentions.
func wantWaitThenError(t *testing.T, r cliResult, wait string, mentions ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code != 1 || r.stdout != "" || len(lines) != 2 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("status %d, stdout %q, stderr %q; want 1, nothing, and two lines", r.code, r.stdout, r.stderr)
	}
	if want := "mcpool: waiting for " + wait + "; retrying for up to 10s in case it is starting (--timeout bounds the wait)"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "mcpool: ") || strings.Count(lines[1], "mcpool:") != 1 {
		t.Errorf("error %q does not say \"mcpool: \" once, at its start", lines[1])
	}
	for _, m := range mentions {
		if !strings.Contains(lines[1], m) {
			t.Errorf("error %q does not mention %q", lines[1], m)
		}
	}
}

// A server that is down: the command says it waits, in case the server is
// starting, then gives up once the circuit breaker opens, saying after how
// many connects and what the last one met (not when its next try would
// be: it makes none).
func TestUnreachableSaysItWaits(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
	r := runCLI(t, "tools", "--url", "http://127.0.0.1:1/mcp")
	wantWaitThenError(t, r, "http://127.0.0.1:1/mcp (connection refused)", "gave up after ", "connection refused")
	if strings.Contains(r.stderr, "next try") {
		t.Errorf("the error speaks of a next try: %q", r.stderr)
	}
}

// --timeout ends the wait sooner, and the error says it did, with the
// last failure; bench's preflight says the same.
func TestUnreachableWithTimeout(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
	for _, cmd := range []string{"tools", "bench"} {
		r := runCLI(t, cmd, "--url", "http://127.0.0.1:1/mcp", "--timeout", "2s")
		wantWaitThenError(t, r, "http://127.0.0.1:1/mcp (connection refused)", "timed out after 2s (--timeout)", "connection refused")
	}
}

// Through a config file the notice names the server, and a call that the
// deadline ends says why: the server's connects failing, not a bare
// "context deadline exceeded".
func TestConfigUnreachableSaysWhy(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
	cfg := writeConfig(t, `{"mcpServers": {"my server.v2": {"url": "http://127.0.0.1:1/mcp"}}}`)
	r := runCLI(t, "call", "--config", cfg, "--server", "my server.v2", "--timeout", "2s", "echo", `{"text": "hi"}`)
	wantWaitThenError(t, r, `server "my server.v2" at http://127.0.0.1:1/mcp (connection refused)`,
		"timed out after 2s (--timeout)", "connection refused")
	r = runCLI(t, "tools", "--config", cfg, "--timeout", "2s")
	wantWaitThenError(t, r, `server "my server.v2" at http://127.0.0.1:1/mcp (connection refused)`,
		"timed out after 2s (--timeout)", `server "my server.v2"`, "connection refused")
}

// A server that cannot be cured by waiting (nothing to run) fails at once,
// with no word of waiting.
func TestMisconfiguredDoesNotWait(t *testing.T) {
	r := runCLI(t, "tools", "--stdio", "/nonexistent/mcp-server")
	wantOneLineError(t, r, 1, "connect")
}
