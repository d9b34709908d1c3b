package mcpool_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

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

func TestEverything(t *testing.T) {
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			cfg := mcpool.Config{MinSessions: 3, MaxSessions: 4, MaxCallsPerSession: 64, AcquireTimeout: time.Minute}
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
