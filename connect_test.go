package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A server that is not an MCP server the pool may use fails Start at once
// (ConnectTimeout 1s: in under 1.2s) with an error matching
// ErrMisconfigured that names what was seen, and acquires fail at once
// after it. Each peer is real: a child process or a loopback HTTP server.

// shServer returns a stdio Command running script under sh.
func shServer(script string, env ...string) *mcpool.Command {
	return &mcpool.Command{Path: "/bin/sh", Args: []string{"-c", script},
		Env: append(os.Environ(), env...), TerminateTimeout: 200 * time.Millisecond}
}

// shMCP is a minimal MCP server in sh: it answers server/discover with
// "method not found", initialize, ping, tools/list (one read-only tool,
// "big") and tools/call. $AFTER_INIT runs after the initialize answer;
// $CALL answers tools/call (the id is in $id).
const shMCP = `
[ -n "$COUNT" ] && echo x >> "$COUNT"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/^[^"]*"jsonrpc":"2.0","id":\([0-9][0-9]*\).*/\1/p')
  [ -z "$id" ] && id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
  *'"method":"server/discover"'*) printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}\n' "$id" ;;
  *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}}}\n' "$id"; eval "$AFTER_INIT" ;;
  *'"method":"ping"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id" ;;
  *'"method":"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"big","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}]}}\n' "$id" ;;
  *'"method":"tools/call"'*) eval "$CALL" ;;
  esac
done
`

// hugeLineFile writes a file holding one JSON-RPC notification of size
// bytes and returns its path: cat sends it faster than a pipeline makes it.
func hugeLineFile(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "line")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := `{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"`
	chunk := []byte(strings.Repeat("x", 1<<20))
	fmt.Fprint(f, head)
	for n := len(head); n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprint(f, "\"}}\n")
	return path
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startFailsFast starts a pool on cfg and checks that Start fails on its
// first connect, before that connect's timeout, with an error matching
// ErrMisconfigured whose message contains each of want, and that an
// acquire after it fails at once. The time Start took is logged: on a
// quiet machine it is milliseconds (a 20 MB line: the time to read 16 MB);
// the bound asserted is the ConnectTimeout, which a retry or a wait for
// the timeout would pass, and a loaded machine reading 16 MB under -race
// does not.
func startFailsFast(t *testing.T, cfg mcpool.Config, want ...string) {
	t.Helper()
	cfg.ConnectTimeout = 10 * time.Second
	cfg.Logger = quietLogger()
	p := newPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := p.Start(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if took >= cfg.ConnectTimeout {
		t.Errorf("Start took %v, want less than one ConnectTimeout (%v): %v", took, cfg.ConnectTimeout, err)
	}
	mustIs(t, err, mcpool.ErrMisconfigured)
	mustIs(t, err, mcpool.ErrConnectFailed)
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) || !ce.Permanent {
		t.Fatalf("want a permanent *ConnectError, got %T: %v", err, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	if n := strings.Count(err.Error(), "mcpool:"); n != 1 {
		t.Errorf("prefix repeated %d times: %v", n, err)
	}
	if n := p.Stats().ConnectErrors; n != 1 {
		t.Errorf("%d failed connects, want 1: a permanent failure is not retried", n)
	}
	start = time.Now()
	_, aerr := p.Acquire(ctx)
	mustIs(t, aerr, mcpool.ErrServerUnavailable)
	mustIs(t, aerr, mcpool.ErrMisconfigured)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Acquire took %v after a permanent failure, want at once", d)
	}
	t.Logf("Start failed in %v: %v", took.Round(time.Millisecond), err)
}

func TestConnectPermanentStdio(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "mcp-server")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\nexec cat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cmd  *mcpool.Command
		want []string
	}{
		{"banner", shServer(`echo "Weather MCP server v1.2 listening on stdio"; exec cat`),
			[]string{"other than JSON-RPC on stdout", `"Weather MCP server v1.2 listening on stdio"`, "stderr"}},
		{"escaped", shServer(`printf 'Ready!\t\033[32mok\033[0m\n'; exec cat`),
			[]string{`"Ready!\t\x1b[32mok\x1b[0m"`}},
		{"JSON log line", shServer(`echo '{"level":"info","msg":"started"}'; exec cat`),
			[]string{`"{\"level\":\"info\",\"msg\":\"started\"}"`}},
		{"20 MB line", shServer(`cat "$LINE"; exec cat`, "LINE="+hugeLineFile(t, 20<<20)),
			[]string{"over the 16 MB frame limit", `"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"xxxx`, "…"}},
		{"executable not found", &mcpool.Command{Path: "/nonexistent/mcp-server"}, []string{"/nonexistent/mcp-server", "program cannot be started", "check its command"}},
		{"not executable", &mcpool.Command{Path: notExecutable}, []string{"program cannot be started", "permission denied"}},
		{"no such directory", &mcpool.Command{Path: "sh", Dir: "/nonexistent/dir"}, []string{"program cannot be started", "working directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			startFailsFast(t, mcpool.Config{Command: c.cmd}, c.want...)
		})
	}
}

func TestConnectPermanentHTTP(t *testing.T) {
	serve := func(h http.HandlerFunc) string {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return ts.URL
	}
	html := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>"+strings.Repeat("x", 500)+"</body></html>")
	})
	plain := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "OK\n")
	})
	loop := serve(func(w http.ResponseWriter, r *http.Request) {
		next := "/a"
		if r.URL.Path == "/a" {
			next = "/b"
		}
		http.Redirect(w, r, next, http.StatusTemporaryRedirect)
	})
	notFound := serve(http.NotFound)
	unauthorized := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcp"`)
		http.Error(w, "missing token", http.StatusUnauthorized)
	})
	forbidden := serve(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	})
	cases := []struct {
		name string
		url  string
		want []string
	}{
		{"html", html + "/mcp", []string{`Content-Type "text/html; charset=utf-8"`, `"<!DOCTYPE html><html><head><title>Welcome to nginx!`, "…", "not MCP"}},
		{"text/plain", plain + "/mcp", []string{`Content-Type "text/plain"`, `"OK\n"`}},
		{"redirect loop", loop + "/mcp", []string{"redirect loop", loop + "/mcp -> " + loop + "/a -> " + loop + "/b -> " + loop + "/a"}},
		{"404", notFound + "/sse", []string{"404 Not Found", "/mcp"}},
		{"401", unauthorized + "/mcp", []string{"401", "BearerToken"}},
		{"403", forbidden + "/mcp", []string{"403 Forbidden", "scopes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			startFailsFast(t, mcpool.Config{URL: c.url}, c.want...)
		})
	}
}

// Transient failures stay transient: a child that exits at once and an
// HTTP server answering 503 are retried until ctx ends, not failed as
// misconfigured.
func TestConnectTransientNotMisconfigured(t *testing.T) {
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream restarting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	for name, cfg := range map[string]mcpool.Config{
		"child exits": {Command: shServer(`echo starting >&2; exit 1`)},
		"503":         {URL: unavailable.URL + "/mcp"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.ConnectTimeout = time.Second
			cfg.Logger = quietLogger()
			p := newPool(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			err := p.Start(ctx)
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mcpool.ErrMisconfigured) {
				t.Fatalf("Start: %v; want it retried until ctx ended, not misconfigured", err)
			}
			if n := p.Stats().ConnectErrors; n < 2 {
				t.Fatalf("%d failed connects: a transient failure is retried", n)
			}
		})
	}
}

// A server may end a session at any time (MCP spec 2025-11-25, "Session
// Management"), even between initialize and notifications/initialized when
// it expires sessions quickly on a loaded machine; it then answers 404 to
// that session's requests. That is a session lost, not a wrong URL: the
// connect is retried and Start succeeds, with no ErrMisconfigured.
func TestConnectSessionEndedDuringInitIsRetried(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "expiring", Version: "1"}, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var (
		mu    sync.Mutex
		ended = map[string]bool{} // the first two sessions, ended at their first request after initialize
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Mcp-Session-Id")
		mu.Lock()
		if id != "" && !ended[id] && len(ended) < 2 {
			ended[id] = true
		}
		gone := ended[id]
		mu.Unlock()
		if gone {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, srv) })
	p := newPool(t, mcpool.Config{URL: ts.URL, MinSessions: 1, Logger: quietLogger(),
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start: %v; want the connects whose session ended retried", err)
	}
	if st := p.Stats(); st.ConnectErrors != 2 || st.SessionsCreated != 1 {
		t.Fatalf("connect errors %d, sessions %d; want the 2 ended sessions retried and 1 session", st.ConnectErrors, st.SessionsCreated)
	}
}

// A connect that ConnectTimeout cuts short after the server made its
// session (here: notifications/initialized is held) does not leave that
// session on the server: the half-made session is deleted (the SDK sends
// its DELETE on a context detached from the connect's). Only the pool's
// live session remains.
func TestConnectCutShortDeletesItsSession(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "slow-initialized", Version: "1"}, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var held atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") != "" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(`"notifications/initialized"`)) && held.CompareAndSwap(false, true) {
				<-r.Context().Done() // the first session's: held until the client gives up
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, srv) })
	p := newPool(t, mcpool.Config{URL: ts.URL, MinSessions: 1, MaxSessions: 1, ConnectTimeout: 500 * time.Millisecond,
		Logger: quietLogger(), BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !held.Load() || p.Stats().ConnectErrors < 1 {
		t.Fatalf("the first connect was not cut short (held %v, stats %+v)", held.Load(), p.Stats())
	}
	eventually(t, "the cut-short connect's session deleted on the server", func() bool {
		n := 0
		for range srv.Sessions() {
			n++
		}
		return n == 1
	})
}

// A server that exits right after every initialize (bad credentials checked
// lazily) is a failed connect each time: it meets backoff (at most 5 spawns
// in 3s) and, once the breaker opens, callers get ErrServerUnavailable with
// the exit status and the end of its stderr.
func TestConnectYoungDeathsBackOff(t *testing.T) {
	count := filepath.Join(t.TempDir(), "spawns")
	cmd := shServer(shMCP, "COUNT="+count, `AFTER_INIT=read -r x; echo "error: invalid API key" >&2; exit 3`)
	p := newPool(t, mcpool.Config{Command: cmd, ProtocolVersion: "2025-11-25", Logger: quietLogger(),
		FailureThreshold: 3, BreakerOpenAfter: 1500 * time.Millisecond, BreakerCooldown: 5 * time.Second})
	spawns := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	// The spawns of the first 3s are counted when 3s have passed; the
	// callers go on until the breaker opens (a loaded machine, slower to
	// spawn, takes longer to fail enough), within a minute.
	start := time.Now()
	firstSeconds := make(chan int, 1)
	timer := time.AfterFunc(3*time.Second, func() { firstSeconds <- spawns() })
	defer timer.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = p.Start(ctx)
	var err error
	for ctx.Err() == nil {
		var l mcpool.Lease
		l, err = p.Acquire(ctx)
		if err == nil {
			l.Release() // a session that has not died yet
			continue
		}
		if errors.Is(err, mcpool.ErrServerUnavailable) {
			break
		}
	}
	opened := time.Since(start)
	n := <-firstSeconds
	if n > 5 {
		t.Errorf("spawned %d times in the first 3s, want <= 5", n)
	}
	t.Logf("%d spawns in the first 3s; breaker open after %v: %v", n, opened.Round(time.Millisecond), err)
	mustIs(t, err, mcpool.ErrServerUnavailable)
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *ConnectError inside: %v", err)
	}
	for _, w := range []string{"exit status 3", "invalid API key"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
}

// A connect cut short by ConnectTimeout says so and matches
// context.DeadlineExceeded, not context.Canceled.
func TestConnectTimeoutCause(t *testing.T) {
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that net/http notices the client leaving
		select {                    // never answers
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(stop) })
	p := newPool(t, mcpool.Config{URL: ts.URL, ConnectTimeout: 200 * time.Millisecond, FailureThreshold: -1})
	err := p.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded against a server that never answers")
	}
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, context.DeadlineExceeded)
	if errors.Is(err, context.Canceled) {
		t.Errorf("a timed-out connect matches context.Canceled: %v", err)
	}
	if !strings.Contains(err.Error(), "ConnectTimeout (200ms") {
		t.Errorf("the error does not name ConnectTimeout and its value: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the exec package's copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A stdio server that exits during connect: the ConnectError carries its
// exit status and the end of its stderr, which still reaches
// Command.Stderr.
func TestConnectStdioExitCause(t *testing.T) {
	var long strings.Builder
	for range 300 {
		long.WriteString("echo 'noise noise noise noise noise' >&2; ")
	}
	cases := []struct {
		name   string
		path   string
		args   []string
		code   int
		stderr string // the kept tail must end with this
	}{
		{"false", "false", nil, 1, ""},
		{"exit 3", "sh", []string{"-c", "echo boom >&2; exit 3"}, 3, "boom"},
		{"long stderr", "sh", []string{"-c", long.String() + "echo last words >&2; exit 4"}, 4, "noise\nlast words"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr syncBuffer
			p := newPool(t, mcpool.Config{Command: &mcpool.Command{Path: c.path, Args: c.args, Stderr: &stderr},
				FailureThreshold: -1, BackoffInitial: time.Second, BackoffMax: time.Second})
			err := p.Start(context.Background())
			var ce *mcpool.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConnectError, got %T: %v", err, err)
			}
			if ce.Exit == nil || ce.Exit.ExitCode() != c.code {
				t.Fatalf("Exit = %v, want exit status %d: %v", ce.Exit, c.code, err)
			}
			if !strings.Contains(err.Error(), "exit status") {
				t.Errorf("the message does not give the exit status: %v", err)
			}
			if !strings.HasSuffix(ce.Stderr, c.stderr) || len(ce.Stderr) > 4096 {
				t.Fatalf("Stderr = %d bytes ending %q, want at most 4096 ending %q", len(ce.Stderr), tail(ce.Stderr, 40), c.stderr)
			}
			if c.stderr != "" && !strings.Contains(err.Error(), c.stderr) {
				t.Errorf("the message does not quote stderr: %v", err)
			}
			if c.name == "long stderr" && !strings.HasPrefix(ce.Stderr, "noise") {
				t.Errorf("a cut stderr tail should start at a line: %q", ce.Stderr[:40])
			}
			if !strings.HasSuffix(strings.TrimSpace(stderr.String()), c.stderr) {
				t.Errorf("Command.Stderr got %q", tail(stderr.String(), 40))
			}
		})
	}
}

// A Start that its ctx ends while a stdio server keeps exiting during the
// connect still says how it exited and what it wrote on stderr, with the
// context's error.
func TestStartDeadlineKeepsStdioExit(t *testing.T) {
	p := newPool(t, mcpool.Config{Command: &mcpool.Command{Path: "sh", Args: []string{"-c", "echo last words >&2; exit 3"}}, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- p.Start(ctx) }()
	eventually(t, "a failed connect", func() bool { return p.Stats().ConnectErrors > 0 })
	cancel()
	err := <-started
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v; want a *ConnectError matching context.Canceled", err)
	}
	if ce.Exit == nil || ce.Exit.ExitCode() != 3 || !strings.HasSuffix(ce.Stderr, "last words") {
		t.Errorf("Exit = %v, Stderr = %q; want exit status 3 and its last words: %v", ce.Exit, ce.Stderr, err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestEverything(t *testing.T) {
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			// ConnectTimeout: node under a loaded machine can take more than
			// the default 10s to start, and a connect that times out is an
			// error this test does not look for.
			cfg := mcpool.Config{MinSessions: 3, MaxSessions: 4, MaxCallsPerSession: 64, AcquireTimeout: time.Minute, ConnectTimeout: time.Minute}
			if transport == "stdio" {
				cfg.Command = everythingStdio(t)
			} else {
				cfg.URL = startEverythingHTTP(t)
			}
			p, err := mcpool.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					p.Close(ctx)
				}
			}()

			// Warm start: MinSessions connected before the first call.
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			if st.Sessions != 3 || st.SessionsCreated != 3 || st.ProtocolVersion != "2025-11-25" {
				t.Fatalf("after Start: %+v", st)
			}
			if transport == "stdio" {
				if n := len(children(t, "server-everything")); n != 3 {
					t.Fatalf("%d server-everything children after Start, want 3", n)
				}
				// Each stdio session gets one tools/list_changed right after
				// initialized (it registers a tool then): wait for all three
				// so that the cache test below is not raced by them.
				eventually(t, "three list_changed", func() bool { return p.Stats().CacheInvalidations == 3 })
			}

			// 200 concurrent echo calls over the warm sessions.
			const calls = 200
			var wg sync.WaitGroup
			for i := range calls {
				wg.Go(func() {
					msg := fmt.Sprintf("m%d", i)
					res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
					if err != nil {
						t.Error(err)
						return
					}
					if got := text(res); got != "Echo: "+msg {
						t.Errorf("echo %q returned %q", msg, got)
					}
				})
			}
			wg.Wait()

			// Cached ListTools: one fetch, then hits.
			inv := p.Stats().CacheInvalidations
			for range 3 {
				tools, err := p.ListTools(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(toolNames(tools), "echo") || len(tools) < 10 {
					t.Fatalf("tools %v", toolNames(tools))
				}
			}
			st = p.Stats()
			if st.CacheInvalidations == inv && (st.CacheMisses != 1 || st.CacheHits != 2) {
				t.Fatalf("cache: %d hits, %d misses with no invalidation, want 2 and 1", st.CacheHits, st.CacheMisses)
			}
			echoTool, err := p.Tool(ctx, "echo")
			if err != nil || echoTool == nil || !echoTool.Annotations.ReadOnlyHint {
				t.Fatalf("Tool(echo) = %+v, %v", echoTool, err)
			}

			// Stats add up.
			st = p.Stats()
			if st.Sessions != st.ActiveSessions+st.IdleSessions || st.CallsInFlight != 0 || st.Waiters != 0 ||
				st.Sessions > 4 || st.SessionsCreated != uint64(st.Sessions) || st.Errors != 0 ||
				st.Acquires < calls || st.CacheHits+st.CacheMisses != 4 {
				t.Fatalf("stats do not add up: %+v", st)
			}

			// Close: every session goes, no child is left behind.
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			closed = true
			st = p.Stats()
			if st.Sessions != 0 || st.SessionsDestroyed != st.SessionsCreated {
				t.Fatalf("after Close: %+v", st)
			}
			if transport == "stdio" {
				if left := children(t, "server-everything"); len(left) != 0 {
					t.Fatalf("children left after Close: %v", left)
				}
			}
		})
	}
}

// A stdio pool's own environment reaches its server (issue 4: "stdio pools
// take per-pool env"), and another pool's does not.
func TestStdioPerPoolEnv(t *testing.T) {
	ctx := context.Background()
	env := func(v string) *mcpool.Command {
		c := everythingStdio(t)
		c.Env = append(os.Environ(), "MCPOOL_TENANT="+v)
		return c
	}
	for _, tenant := range []string{"acme", "globex"} {
		p := newPool(t, mcpool.Config{Command: env(tenant)})
		res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "get-env"})
		if err != nil {
			t.Fatal(err)
		}
		got := text(res)
		if !strings.Contains(got, `"MCPOOL_TENANT": "`+tenant+`"`) && !strings.Contains(got, `"MCPOOL_TENANT":"`+tenant+`"`) {
			t.Fatalf("pool %s: server env has no MCPOOL_TENANT=%s: %.300s", tenant, tenant, got)
		}
	}
}

func TestSmokeTransports(t *testing.T) {
	ctx := context.Background()
	srv := demoserver.New(demoserver.Options{})
	nt, _ := inMemory(srv)
	cases := map[string]mcpool.Config{
		"memory":         {NewTransport: nt},
		"http-stateful":  {URL: httpServer(t, srv, false)},
		"http-stateless": {URL: httpServer(t, srv, true)},
		"stdio":          {Command: stdioCommand(t)},
		"sse":            {SSEURL: sseServer(t, srv)},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPool(t, cfg)
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			echo(t, ctx, p, "hi "+name)
			tools, err := p.ListTools(ctx)
			if err != nil || len(tools) != 3 {
				t.Fatalf("ListTools: %d tools, %v", len(tools), err)
			}
			t.Logf("%s: %+v", name, p.Stats())
		})
	}
}

// sseServer serves srv over the legacy HTTP+SSE transport on loopback.
func sseServer(t *testing.T, srv *mcp.Server) string {
	t.Helper()
	ts := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}
