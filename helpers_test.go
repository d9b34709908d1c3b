package mcpool_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// inMemory returns a NewTransport that connects each session to srv over
// in-memory pipes, and a counter of the transports it made.
func inMemory(srv *mcp.Server) (func(context.Context) (mcp.Transport, error), *atomic.Int64) {
	var n atomic.Int64
	return func(ctx context.Context) (mcp.Transport, error) {
		n.Add(1)
		ct, st := mcp.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}, &n
}

// newPool makes a pool and closes it when the test ends.
func newPool(t *testing.T, cfg mcpool.Config) *mcpool.Pool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := mcpool.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// httpServer serves srv over streamable HTTP on loopback.
func httpServer(t *testing.T, srv *mcp.Server, stateless bool) string {
	t.Helper()
	ts := httptest.NewServer(demoserver.Handler(srv, stateless, 0))
	t.Cleanup(func() { closeServer(ts, srv) })
	return ts.URL
}

// closeServer ends the sessions srv still holds, then stops ts. A pool
// closed in the middle of a connect, or a fault that swallowed a DELETE,
// leaves a session the server keeps until told: goleak would see its
// readers.
func closeServer(ts *httptest.Server, srv *mcp.Server) {
	for ss := range srv.Sessions() {
		_ = ss.Close()
	}
	ts.Close()
}

// stdioCommand starts this test binary as a go-sdk stdio server.
func stdioCommand(t *testing.T) *mcpool.Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The race detector makes a process sleep 1s at exit unless told not to.
	return &mcpool.Command{Path: exe, Env: append(os.Environ(), stdioServerEnv+"=1", "GORACE=atexit_sleep_ms=0")}
}

// eventually polls cond until it holds or the deadline passes. It waits for
// a state the test caused, never for time to pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, cond)
}

// eventuallyWithin is eventually with a deadline of its own, for states a
// loaded machine reaches slowly.
func eventuallyWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func echo(t *testing.T, ctx context.Context, p *mcpool.Pool, msg string) {
	t.Helper()
	res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if got := text(res); got != msg {
		t.Fatalf("echo returned %q, want %q", got, msg)
	}
}

func text(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) == 0 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// concurrency counts calls in flight per server session and the most seen.
type concurrency struct {
	mu       sync.Mutex
	now      map[*mcp.ServerSession]int
	maxPer   int
	sessions map[*mcp.ServerSession]bool
}

func newConcurrency() *concurrency {
	return &concurrency{now: map[*mcp.ServerSession]int{}, sessions: map[*mcp.ServerSession]bool{}}
}

func (c *concurrency) onCall(ss *mcp.ServerSession, _ string) func() {
	c.mu.Lock()
	c.now[ss]++
	c.sessions[ss] = true
	c.maxPer = max(c.maxPer, c.now[ss])
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.now[ss]--
		c.mu.Unlock()
	}
}

func (c *concurrency) figures() (maxPer, sessions int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxPer, len(c.sessions)
}

func mustIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v: want errors.Is %v", err, target)
	}
}

// peekMethod reads the JSON-RPC method of a POST body and puts the body back.
func peekMethod(r *http.Request) string {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return ""
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var msg struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(body, &msg)
	return msg.Method
}

// httpServerTimeout serves srv over stateful streamable HTTP whose sessions
// the server forgets after timeout idle (real 404s afterwards).
func httpServerTimeout(t *testing.T, srv *mcp.Server, timeout time.Duration) string {
	t.Helper()
	ts := httptest.NewServer(demoserver.Handler(srv, false, timeout))
	t.Cleanup(func() { closeServer(ts, srv) })
	return ts.URL
}

// env is a variable lookup over vars, for config.Parse.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// The reference server from npm, pinned in testdata/npm and installed by
// scripts/test. These tests fail, never skip, when it is missing.
func everythingJS(t *testing.T) string {
	t.Helper()
	js, err := filepath.Abs("testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("server-everything is not installed (%v): run scripts/test, which runs npm ci --prefix testdata/npm", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: install Node.js 18+ (%v)", err)
	}
	return js
}

func everythingStdio(t *testing.T) *mcpool.Command {
	return &mcpool.Command{Path: "node", Args: []string{everythingJS(t), "stdio"}}
}

// startEverythingHTTP runs server-everything's streamable HTTP mode on a
// free port and returns its endpoint on 127.0.0.1. The server listens on
// every interface (it has no host setting); the tests only ever dial
// loopback. It is stopped and reaped when the test ends.
func startEverythingHTTP(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	everythingOnPort(t, port)
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
}

// everythingOnPort runs server-everything's streamable HTTP mode on port
// and waits until it listens. kill stops it with SIGKILL and reaps it; it
// also runs when the test ends if not called before.
func everythingOnPort(t *testing.T, port int) (kill func()) {
	t.Helper()
	cmd := exec.Command("node", everythingJS(t), "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on port") {
				ready <- nil
				for sc.Scan() {
				}
				return
			}
		}
		ready <- fmt.Errorf("server-everything exited before it listened: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server-everything did not listen within 30s")
	}
	return kill
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
