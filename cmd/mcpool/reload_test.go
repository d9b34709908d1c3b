//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// runGatewayFile runs "mcpool gateway --config path" in process with args
// added, and returns its /mcp URL, its logs and a stop func (the
// equivalent of SIGTERM) returning the exit status.
func runGatewayFile(t *testing.T, path string, args ...string) (url string, logs *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- runContext(ctx, append([]string{"gateway", "--config", path, "--listen", "127.0.0.1:0", "--drain-timeout", "20s"}, args...), os.Stdout, logs)
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
			return m[1], logs, stop
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

func writeConfigFile(t *testing.T, path, servers string) {
	t.Helper()
	// Written whole and renamed into place, as editors do, so that the
	// gateway never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(servers), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func gatewayConfig(servers map[string]string) string {
	var entries, modes []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range servers {
			if !yield(k) {
				return
			}
		}
	}) {
		entries = append(entries, fmt.Sprintf(`    %q: {"type": "http", "url": %q}`, name, servers[name]))
		modes = append(modes, fmt.Sprintf(`%q: {"mode": "shared"}`, name))
	}
	return "{\n  // reloaded by the test\n  \"mcpServers\": {\n" + strings.Join(entries, ",\n") +
		"\n  },\n  \"gateway\": {\"servers\": {" + strings.Join(modes, ", ") + "}}\n}\n"
}

// demoServers starts n demo servers over HTTP (as "mcpool demo-server"),
// stopped when the test ends, and returns their URLs.
func demoServers(t *testing.T, n int) []string {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		u, stop := startDemoServer(t)
		t.Cleanup(func() { stop() })
		urls[i] = u
	}
	return urls
}

// gatewayClient connects a go-sdk client to the gateway at url through hc
// (nil: the default client), closed when the test ends.
func gatewayClient(t *testing.T, ctx context.Context, url string, hc *http.Client) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func listsTool(ctx context.Context, cs *mcp.ClientSession, name string) bool {
	res, err := cs.ListTools(ctx, nil)
	return err == nil && slices.ContainsFunc(res.Tools, func(tl *mcp.Tool) bool { return tl.Name == name })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SIGHUP reloads the config under load: 16 callers call the servers that
// stay while one server is added, one removed (a call in flight on it) and
// one changed to another live server. No call to a server that stays fails,
// the added server is listed within a second of the signal, a downstream
// session hears tools/list_changed, and the removed server's call
// finishes. Then a file that does not load keeps the running config, with
// one log line.
func TestGatewayReloadOnSIGHUP(t *testing.T) {
	urls := demoServers(t, 5)
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": urls[0], "b": urls[1], "gone": urls[2]}))
	url, logs, stop := runGatewayFile(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var listChanged atomic.Int64
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { listChanged.Add(1) },
	})
	watcher, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	inFlight := make(chan error, 1)
	go func() {
		res, err := watcher.CallTool(ctx, &mcp.CallToolParams{Name: "gone__sleep", Arguments: map[string]any{"ms": 5000}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		inFlight <- err
	}()

	stopCalls := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	for i := range 16 {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "caller", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		tool := []string{"a__echo", "b__echo"}[i%2]
		wg.Go(func() {
			for {
				select {
				case <-stopCalls:
					return
				default:
				}
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"message": "m"}})
				if err != nil || res.IsError {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v %v", tool, err, res))
				}
				calls.Add(1)
			}
		})
	}
	defer func() { close(stopCalls); wg.Wait() }()
	waitFor(t, "calls under way", func() bool { return calls.Load() > 64 })

	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": urls[0], "b": urls[3], "new": urls[4]}))
	sent := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new__echo listed", func() bool { return listsTool(ctx, watcher, "new__echo") })
	listed := time.Since(sent)
	// A figure (go test -v), not a bound: a loaded machine may take longer.
	t.Logf("added server listed %v after SIGHUP", listed)
	waitFor(t, "tools/list_changed", func() bool { return listChanged.Load() > 0 })
	if err := <-inFlight; err != nil {
		t.Errorf("the removed server's call in flight: %v", err)
	}
	waitFor(t, "the reload to finish", func() bool { return strings.Contains(logs.String(), "reloaded the config") })
	if listsTool(ctx, watcher, "gone__echo") {
		t.Error("the removed server is still listed")
	}
	// /metrics follows: the added server's calls are counted, the removed
	// server is not exported.
	if res, err := watcher.CallTool(ctx, &mcp.CallToolParams{Name: "new__echo", Arguments: map[string]any{"message": "m"}}); err != nil || res.IsError {
		t.Fatalf("new__echo: %v %v", err, res)
	}
	metrics := scrape(t, strings.TrimSuffix(url, "/mcp")+"/metrics")
	if !regexp.MustCompile(`mcpool_calls_total\{outcome="ok",server="new",tool="echo"\} 1`).MatchString(metrics) {
		t.Errorf("/metrics lacks the added server's call:\n%s", grepLines(metrics, "mcpool_calls_total"))
	}
	if strings.Contains(metrics, `mcpool_sessions{server="gone"`) {
		t.Errorf("/metrics still exports the removed server")
	}
	before := calls.Load()
	waitFor(t, "calls after the reload", func() bool { return calls.Load() > before+64 })

	// A file that does not load: one line, and the running config stays.
	writeConfigFile(t, path, `{"mcpServers": {"a": {"type": "http", "url": `)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload's line", func() bool { return strings.Contains(logs.String(), "reload failed") })
	before = calls.Load()
	waitFor(t, "calls after the failed reload", func() bool { return calls.Load() > before+64 })
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("%d lines about the failed reload, want 1: %s", n, logs.String())
	}
	if !listsTool(ctx, watcher, "new__echo") {
		t.Error("the failed reload dropped a server")
	}
	close(stopCalls)
	wg.Wait()
	stopCalls = make(chan struct{})
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls to the servers that stay failed; first: %v", n, calls.Load(), firstErr.Load())
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d: %s", code, logs.String())
	}
}

// With --watch, a change of the file reloads it, and a file that stops
// loading keeps the running config with one log line.
func TestGatewayReloadWatch(t *testing.T) {
	urls := demoServers(t, 2)
	a, b := urls[0], urls[1]
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": a}))
	url, logs, stop := runGatewayFile(t, path, "--watch")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := gatewayClient(t, ctx, url, nil)

	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": a, "b": b}))
	waitFor(t, "b__echo listed", func() bool { return listsTool(ctx, cs, "b__echo") })

	// The same bytes written again are no change.
	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": a, "b": b}))
	writeConfigFile(t, path, `{"mcpServers": {"a": `)
	waitFor(t, "the failed reload's line", func() bool { return strings.Contains(logs.String(), "reload failed") })
	time.Sleep(2500 * time.Millisecond) // two more looks at an unchanged file
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("%d lines about the failed reload, want 1: %s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "reloaded the config"); n != 1 {
		t.Errorf("%d reloads, want 1 (the same bytes again are no change): %s", n, logs.String())
	}
	if !listsTool(ctx, cs, "b__echo") || !listsTool(ctx, cs, "a__echo") {
		t.Error("the failed reload dropped a server")
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d: %s", code, logs.String())
	}
}

// A reload that adds a server which is down (answering 503 while it
// starts) and one that is up applies at once, as a start would: the server
// that is up is listed without waiting out the other's breaker window
// (10 s), and the one that was down is listed once it answers.
func TestGatewayReloadAddsAServerThatIsDown(t *testing.T) {
	urls := demoServers(t, 3)
	a, b, late := urls[0], urls[1], urls[2]
	lateURL, err := url.Parse(late)
	if err != nil {
		t.Fatal(err)
	}
	handler, up := demoserver.Starting(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: lateURL.Scheme, Host: lateURL.Host}))
	starting := httptest.NewServer(handler)
	t.Cleanup(starting.Close)
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": a}))
	gw, logs, stop := runGatewayFile(t, path, "--watch")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := gatewayClient(t, ctx, gw, nil)

	writeConfigFile(t, path, gatewayConfig(map[string]string{"a": a, "b": b, "late": starting.URL + lateURL.Path}))
	written := time.Now()
	waitFor(t, "the reload", func() bool { return strings.Contains(logs.String(), "reloaded the config") })
	// The file is looked at every second; the reload itself must not add
	// the 10 s a server that is down takes to open its breaker.
	if took := time.Since(written); took > 5*time.Second {
		t.Errorf("the reload ended %v after the file changed; want within the watch's second and no wait for the server that is down", took)
	}
	if !listsTool(ctx, cs, "b__echo") {
		t.Error("the server added beside the one that is down is not listed after the reload")
	}
	if !strings.Contains(logs.String(), "some servers did not start") || !strings.Contains(logs.String(), `server \"late\"`) {
		t.Errorf("no log line names the server that did not start: %s", logs.String())
	}
	up()
	waitFor(t, "late__echo listed once the server answers", func() bool { return listsTool(ctx, cs, "late__echo") })
	if code := stop(); code != 0 {
		t.Errorf("exit status %d: %s", code, logs.String())
	}
}

// A passthrough server's /metrics follow reloads: replaced (its URL
// changed, so the gateway makes a new keyed pool), its figures are the new
// pool's, not frozen at the old one's; removed, they leave /metrics.
func TestGatewayReloadPassthroughMetrics(t *testing.T) {
	urls := demoServers(t, 3)
	a, p1, p2 := urls[0], urls[1], urls[2]
	config := func(p string) string {
		servers := fmt.Sprintf(`"a": {"type": "http", "url": %q}`, a)
		modes := `"a": {"mode": "shared"}`
		if p != "" {
			servers += fmt.Sprintf(`, "p": {"type": "http", "url": %q}`, p)
			modes += `, "p": {"mode": "passthrough", "forwardHeaders": ["X-Api-Key"]}`
		}
		return "{\n  // a passthrough server, reloaded\n  \"mcpServers\": {" + servers + "},\n  \"gateway\": {\"servers\": {" + modes + "}}\n}\n"
	}
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, config(p1))
	gw, logs, stop := runGatewayFile(t, path, "--watch")
	metricsURL := strings.TrimSuffix(gw, "/mcp") + "/metrics"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := gatewayClient(t, ctx, gw, &http.Client{Transport: headerTransport{set: map[string]string{"X-Api-Key": "k1"}}})
	call := func() {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "p__echo", Arguments: map[string]any{"message": "m"}})
		if err != nil || res.IsError {
			t.Fatalf("p__echo: %v %+v", err, res)
		}
	}
	acquires := regexp.MustCompile(`(?m)^mcpool_acquires_total\{server="p"\} (\d+)$`)
	exported := func() int {
		m := acquires.FindStringSubmatch(scrape(t, metricsURL))
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// Each call acquires from the pool serving p.
	follows := func(when string) {
		t.Helper()
		call()
		before := exported()
		call()
		if after := exported(); before < 1 || after <= before {
			t.Errorf("%s: p's acquires went from %d to %d over a call, want more", when, before, after)
		}
	}
	follows("before the reload")
	writeConfigFile(t, path, config(p2))
	waitFor(t, "the reload replacing p", func() bool { return strings.Contains(logs.String(), "reloaded the config") })
	follows("after p was replaced")
	writeConfigFile(t, path, config(""))
	waitFor(t, "the reload removing p", func() bool { return strings.Count(logs.String(), "reloaded the config") == 2 })
	if got := exported(); got != -1 {
		t.Errorf("p's acquires after it was removed: %d, want no series", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d: %s", code, logs.String())
	}
}

// A reload that takes a server out of passthrough mode when it was the
// only one (so the reload makes the gateway's Group) exports it from the
// Group: its keyed pool's name is let go first.
func TestGatewayReloadPassthroughToShared(t *testing.T) {
	p := demoServers(t, 1)[0]
	config := func(mode string) string {
		extra := ""
		if mode == "passthrough" {
			extra = `, "forwardHeaders": ["X-Api-Key"]`
		}
		return fmt.Sprintf("{\n  \"mcpServers\": {\"p\": {\"type\": \"http\", \"url\": %q}},\n  \"gateway\": {\"servers\": {\"p\": {\"mode\": %q%s}}}\n}\n", p, mode, extra)
	}
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, config("passthrough"))
	gw, logs, stop := runGatewayFile(t, path, "--watch")
	writeConfigFile(t, path, config("shared"))
	waitFor(t, "the reload", func() bool { return strings.Contains(logs.String(), "reloaded the config") })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := gatewayClient(t, ctx, gw, nil)
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "p__echo", Arguments: map[string]any{"message": "m"}}); err != nil || res.IsError {
		t.Fatalf("p__echo in shared mode: %v %+v", err, res)
	}
	metrics := scrape(t, strings.TrimSuffix(gw, "/mcp")+"/metrics")
	if !regexp.MustCompile(`(?m)^mcpool_sessions_created_total\{server="p"\} [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics does not export p's shared pool:\n%s\nlogs: %s", grepLines(metrics, `server="p"`), logs.String())
	}
	if strings.Contains(logs.String(), "exporting the servers' metrics") {
		t.Errorf("the reload could not export the Group: %s", grepLines(logs.String(), "metrics"))
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d: %s", code, logs.String())
	}
}

// scrape GETs url and returns the body.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
