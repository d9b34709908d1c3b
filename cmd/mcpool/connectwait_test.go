package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
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

// A server with a replica that is down and one that answers: calls go to
// the live one and nothing waits for the other, so its failing connects
// are not announced; a server whose replicas are all down is.
func TestNoticeReplicaDown(t *testing.T) {
	live := demoHTTP(t)
	for _, c := range []struct {
		name     string
		first    string
		announce bool
	}{
		{"one live", live, false},
		{"none live", "http://127.0.0.1:1/mcp", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := mcpool.ServerConfig{Name: "s", Replicas: []mcpool.Config{{URL: c.first}, {URL: "http://127.0.0.1:2/mcp"}}}
			g, err := mcpool.NewGroup(mcpool.GroupConfig{Servers: []mcpool.ServerConfig{sc}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close(context.Background())
			replicas := g.Replicas("s")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if !c.announce {
				if err := replicas[0].Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			var buf bytes.Buffer
			n := newConnectNotice(&buf)
			n.start = n.start.Add(-noticeAfter) // as if the command had waited a second already
			n.watch(replicas[1], "s", &sc.Replicas[1], replicas[0])
			down := replicas[1]
			go func() { _ = down.Start(ctx) }()
			waitFor(t, "a failed connect", func() bool { return down.Stats().ConnectErrors > 0 })
			n.done()
			got := buf.String()
			if announced := strings.Contains(got, `waiting for server "s" at http://127.0.0.1:2/mcp`); announced != c.announce {
				t.Errorf("notice %q; want one: %v", got, c.announce)
			}
		})
	}
}

// The notice says how long the wait lasts under the server's circuit
// breaker settings, and nothing when there is no breaker (no wait).
func TestRideOut(t *testing.T) {
	for _, c := range []struct {
		threshold int
		window    time.Duration
		want      string
		rides     bool
	}{
		{0, 0, "for up to 10s", true},
		{3, 2 * time.Second, "for up to 2s", true},
		{60, 0, "until 60 connects in a row have failed over at least 10s", true},
		{0, -1, "until 5 connects in a row have failed", true},
		{-1, 0, "", false},
	} {
		got, rides := rideOut(&mcpool.Config{FailureThreshold: c.threshold, BreakerOpenAfter: c.window})
		if got != c.want || rides != c.rides {
			t.Errorf("FailureThreshold %d, BreakerOpenAfter %v: %q %v, want %q %v", c.threshold, c.window, got, rides, c.want, c.rides)
		}
	}
}

// The command's last line drops the library's "next try in" (the command
// makes none), wherever the *UnavailableError sits in the error.
func TestReportDropsNextTry(t *testing.T) {
	unavailable := &mcpool.UnavailableError{Failures: 23, RetryIn: time.Second,
		Cause: &mcpool.ConnectError{Target: "http://127.0.0.1:1/mcp", Cause: errors.New("connection refused")}}
	var buf bytes.Buffer
	report(&buf, "tools", &mcpool.ListError{Kind: "tools", Failed: []*mcpool.ServerError{{Server: "down", Err: unavailable}}})
	if got := buf.String(); strings.Contains(got, "next try") || !strings.Contains(got, "server unavailable after 23 failed connects: connect to") {
		t.Errorf("report: %q", got)
	}
}

// A server that is down does not hold up the others: with a --timeout
// shorter than its ride-out, tools lists the live server's tools and names
// the one left out, and servers still prints every row.
func TestConfigDownServerDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
	cfg := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}, "down": {"url": "http://127.0.0.1:1/mcp"}}}`, demoHTTP(t)))
	r := runCLI(t, "tools", "--config", cfg, "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stdout, "demo__echo") || !strings.Contains(r.stderr, "left out of the list, unreachable: down (") {
		t.Errorf("tools: status %d, stdout %q, stderr %q; want demo's tools and down left out", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "servers", "--config", cfg, "--timeout", "2s")
	if r.code != 1 || !regexp.MustCompile(`(?m)^demo\s+healthy\s+connected 1\.00\s+1\s+3\s`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^down\s.*connection refused`).MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "timed out after 2s (--timeout): 1 of 2 servers had not listed their tools: down") {
		t.Errorf("servers: status %d, stdout %q, stderr %q; want both rows and down named", r.code, r.stdout, r.stderr)
	}
}

// A server whose replicas are all down is announced once, not once per
// replica.
func TestNoticeOncePerServer(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
	cfg := writeConfig(t, `{"mcpServers": {"s": {"url": "http://127.0.0.1:1/mcp"}},
		"mcpool": {"servers": {"s": {"replicas": ["http://127.0.0.1:1/mcp", "http://127.0.0.1:2/mcp"]}}}}`)
	r := runCLI(t, "call", "--config", cfg, "--timeout", "2s", "s__echo", `{}`)
	if n := strings.Count(r.stderr, "mcpool: waiting for server \"s\""); r.code != 1 || n != 1 {
		t.Errorf("status %d, %d notices in %q; want 1 and one notice", r.code, n, r.stderr)
	}
}

// Through a config file, a server that never answers its handshake (and
// ignores the end of its input) is reported with both places its connect
// timeout is set, the flag and the server's "connectTimeout" in the file,
// and the command exits on time, as with --stdio: the close that --timeout
// cut short does not wait out the server's terminate grace.
func TestConfigMuteServerOnTime(t *testing.T) {
	cfg := writeConfig(t, `{"mcpServers": {"mute": {"command": "sleep", "args": ["60"]}}}`)
	p := execCLI(t, "tools", "--config", cfg, "--connect-timeout", "400ms", "--timeout", "2s")
	p.wait(time.Now())
	if r := p.result(); r.code != exitFailure || !strings.Contains(r.stderr, `raise --connect-timeout, or the server's "connectTimeout" in the config file,`) ||
		strings.Contains(r.stderr, "Config.ConnectTimeout") {
		t.Errorf("status %d, stderr %q; want the flag and the file's key named", r.code, r.stderr)
	}
	// --timeout ends the command while a connect is under way.
	start := time.Now()
	p = execCLI(t, "tools", "--config", cfg, "--timeout", "1s")
	if _, took := p.wait(start); took > quickExit {
		t.Errorf("exited %v after it started, want within %v; stderr %q", took, quickExit, p.result().stderr)
	}
}
