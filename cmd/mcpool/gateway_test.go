package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer that a test may read while the command
// writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGateway runs "mcpool gateway" in process on a free loopback port with
// the config given, and returns its /mcp URL and a stop func that sends the
// equivalent of SIGTERM (cancels the command's context) and returns the
// exit status.
func startGateway(t *testing.T, config string) (url string, stop func() int, logs *lockedBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- runContext(ctx, []string{"gateway", "--config", path, "--listen", "127.0.0.1:0", "--drain-timeout", "20s"}, os.Stdout, logs)
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-status:
			case <-time.After(60 * time.Second):
				t.Fatal("gateway did not stop after SIGTERM")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	re := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/mcp)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1], stop, logs
		}
		select {
		case code := <-status:
			t.Fatalf("gateway exited (%d) before serving: %s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not serve within 60s: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func everythingJS(t *testing.T) string {
	t.Helper()
	js, err := filepath.Abs("../../testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("server-everything is not installed (%v): run scripts/test", err)
	}
	return js
}

// The done-when check, in small: the gateway serves a config mixing a stdio
// server (server-everything) and an HTTP server (the demo server); the
// project's own CLI lists every server's namespaced tools through it and
// calls work; SIGTERM exits 0 and leaves no child.
func TestGatewayCommandServesConfig(t *testing.T) {
	demoURL, stopDemo := startDemoServer(t)
	defer stopDemo()
	config := fmt.Sprintf(`{
  "mcpServers": {
    "everything": {"command": "node", "args": [%q, "stdio"]},
    "demo": {"type": "http", "url": %q}
  },
  "gateway": {"servers": {"everything": {"mode": "shared"}, "demo": {"mode": "shared"}}}
}`, everythingJS(t), demoURL)
	url, stop, logs := startGateway(t, config)

	r := runCLI(t, "tools", "--url", url)
	if r.code != 0 {
		t.Fatalf("tools through the gateway: %d %s", r.code, r.stderr)
	}
	names := toolNames(t, r)
	for _, want := range []string{"demo__echo", "demo__sleep", "everything__echo", "everything__get-sum"} {
		if !slices.Contains(names, want) {
			t.Errorf("mcpool tools --url %s lacks %s (got %v)", url, want, names)
		}
	}
	for tool, args := range map[string]string{"demo__echo": `{"message":"hi"}`, "everything__get-sum": `{"a":2,"b":40}`} {
		r := runCLI(t, "call", "--url", url, tool, args)
		if r.code != 0 || !(strings.Contains(r.stdout, "hi") || strings.Contains(r.stdout, "42")) {
			t.Errorf("call %s through the gateway: %d %q %q", tool, r.code, r.stdout, r.stderr)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d after SIGTERM, want 0: %s", code, logs.String())
	}
	if !strings.Contains(logs.String(), "drained") {
		t.Errorf("no drain in the logs: %s", logs.String())
	}
	wantNoChildren(t)
}

// Listening off loopback without a token is refused in one line.
func TestGatewayNeedsTokenOffLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(`{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tokenEnv, "")
	r := runCLI(t, "gateway", "--config", path, "--listen", "0.0.0.0:0")
	wantOneLineError(t, r, exitUsage, "--token")
}

// The JSON log format writes one JSON object per line.
func TestGatewayJSONLogs(t *testing.T) {
	demoURL, stopDemo := startDemoServer(t)
	defer stopDemo()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}}, "gateway": {"servers": {"demo": {"mode": "shared"}}}}`, demoURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"gateway", "--config", path, "--listen", "127.0.0.1:0", "--log-format", "json"}, os.Stdout, logs)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"serving MCP"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no JSON 'serving MCP' line: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}
