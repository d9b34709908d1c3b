package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/oauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startGateway runs "mcpool gateway" in process on a free loopback port with
// the config given, and returns its /mcp URL and a stop func that sends the
// equivalent of SIGTERM (cancels the command's context) and returns the
// exit status.
func startGateway(t *testing.T, config string, extra ...string) (url string, stop func() int, logs *lockedBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	url, logs, stop = runGatewayFile(t, path, extra...) // reload_test.go
	return url, stop, logs
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

// gatewayStdioEnv makes the test binary run "mcpool gateway --stdio" with
// the config file it names, so the stdio test starts a real child process.
const gatewayStdioEnv = "MCPOOL_CLI_TEST_GATEWAY_STDIO"

// gatewayStdioArgsEnv adds flags to that command, separated by spaces.
const gatewayStdioArgsEnv = "MCPOOL_CLI_TEST_GATEWAY_STDIO_ARGS"

func init() {
	if config := os.Getenv(gatewayStdioEnv); config != "" {
		args := append([]string{"gateway", "--stdio", "--config", config}, strings.Fields(os.Getenv(gatewayStdioArgsEnv))...)
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
}

// --stdio: a desktop client's single server entry. SIGTERM while a call is
// in flight drains: the call finishes, then the process exits 0.
func TestGatewayStdioDrainsOnSIGTERM(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	up := mcp.NewServer(&mcp.Implementation{Name: "block", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "finished"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"mcpServers": {"b": {"url": %q}}, "gateway": {"servers": {"b": {"mode": "shared"}}}}`, ts.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	cmd.Env = append(os.Environ(), gatewayStdioEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect over stdio: %v (%s)", err, logs.String())
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "b__block" {
		t.Fatalf("tools over stdio: %v, %v", tools, err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "b__block", Arguments: map[string]any{}})
		if err == nil && (res.IsError || len(res.Content) == 0) {
			err = fmt.Errorf("tool error: %+v", res)
		}
		done <- err
	}()
	<-started
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(logs.String(), "draining") {
		select {
		case <-ctx.Done():
			t.Fatalf("no drain after SIGTERM: %s", logs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the call in flight at SIGTERM: %v; want it finished; gateway log:\n%s", err, logs.String())
	}
	_ = cs.Wait()
	for cmd.ProcessState == nil {
		select {
		case <-ctx.Done():
			t.Fatal("the gateway did not exit")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0: %s", code, logs.String())
	}
}

// --stdio, SIGTERM with a call in flight that outlasts --drain-timeout: at
// the deadline the call is cancelled upstream and answered with the
// gateway's draining error, and the process exits 0 soon after.
func TestGatewayStdioDrainTimeoutCancelsTheCall(t *testing.T) {
	started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	up := mcp.NewServer(&mcp.Implementation{Name: "block", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		<-ctx.Done() // only the gateway's cancellation ends it
		cancelled <- struct{}{}
		return nil, nil, ctx.Err()
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"mcpServers": {"b": {"url": %q}}, "gateway": {"servers": {"b": {"mode": "shared"}}}}`, ts.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const drain = 500 * time.Millisecond
	cmd := exec.Command(exe)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	cmd.Env = append(os.Environ(), gatewayStdioEnv+"="+path, gatewayStdioArgsEnv+"=--drain-timeout "+drain.String(), "GORACE=atexit_sleep_ms=0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 30 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connect over stdio: %v (%s)", err, logs.String())
	}
	defer cs.Close()
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "b__block", Arguments: map[string]any{}})
		done <- err
	}()
	<-started
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "-32053") && !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("the call in flight at the drain's deadline: %v; want the gateway's draining error; gateway log:\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("the call got no answer: %s", logs.String())
	}
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatalf("the upstream call was not cancelled: %s", logs.String())
	}
	// The client's session ends when the process's stdout does, and the
	// transport then reaps the process.
	_ = cs.Wait()
	if cmd.ProcessState == nil {
		t.Fatalf("the gateway did not exit: %s", logs.String())
	}
	// drain, then at most DrainAnswerWait (a cancelled call ends at once)
	// and the close: well within drain + 5 s.
	if took := time.Since(sent); took > drain+5*time.Second {
		t.Errorf("the gateway exited %v after SIGTERM, want within %v", took, drain+5*time.Second)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0: %s", code, logs.String())
	}
	if l := logs.String(); !strings.Contains(l, "drain timed out: calls still in flight were cancelled") || strings.Contains(l, "server is closing") {
		t.Errorf("gateway log:\n%s\nwant the drain's timeout told, and no session closed under an answer", l)
	}
}

// After the drain, a client between two calls (its keep-alive connection
// idle) still gets an answer it can act on, 503 with Connection: close,
// rather than a connection closed under its next request.
func TestGatewayAnswersBeforeClosingIdleConnections(t *testing.T) {
	old := drainLinger
	drainLinger = 5 * time.Second // the test's request comes well within it
	t.Cleanup(func() { drainLinger = old })
	demoURL, stopDemo := startDemoServer(t)
	defer stopDemo()
	url, stop, logs := startGateway(t, fmt.Sprintf(`{"mcpServers": {"demo": {"type": "http", "url": %q}}}`, demoURL))

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	post := func() (*http.Response, bool, error) {
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, reused, err
	}
	if _, _, err := post(); err != nil { // leaves a keep-alive connection idle
		t.Fatal(err)
	}
	stopped := make(chan int, 1)
	go func() { stopped <- stop() }()
	for !strings.Contains(logs.String(), "answering 503 before closing idle connections") {
		select {
		case code := <-stopped:
			t.Fatalf("the gateway exited (%d) without answering after its drain: %s", code, logs.String())
		case <-time.After(time.Millisecond):
		}
	}
	resp, reused, err := post()
	if err != nil {
		t.Fatalf("a request on the idle connection after the drain: %v; want a 503", err)
	}
	if !reused || resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Errorf("after the drain: status %d, connection closing %v, reused %v; want 503 with Connection: close, on the idle connection", resp.StatusCode, resp.Close, reused)
	}
	if code := <-stopped; code != 0 {
		t.Errorf("exit status %d, want 0: %s", code, logs.String())
	}
}

// TestGatewayReusesUpstreamConnections: with the config's defaults, the
// gateway keeps an idle upstream connection for every call that can be in
// flight, so 32 callers at once do not open a TCP connection per call (the
// client it made for an HTTP server used to keep net/http's 2).
func TestGatewayReusesUpstreamConnections(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	var conns atomic.Int64
	ts := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(func() { // after the gateway has stopped (cleanups run last first)
		for ss := range up.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	})
	url, _, _ := startGateway(t, fmt.Sprintf(`{
  // a server named as users name them
  "mcpServers": {"Echo Server.v2": {"url": %q}},
  "gateway": {"servers": {"Echo Server.v2": {"mode": "shared"}}}
}`, ts.URL))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "caller", Version: "1"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(tools.Tools) != 1 {
		t.Fatalf("tools: %v, %v", tools, err)
	}
	before := conns.Load()
	const callers, each = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tools.Tools[0].Name}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// At most one connection per call in flight; churn would be one per
	// call beyond the 2 kept idle (hundreds).
	if n := conns.Load() - before; n > callers+8 {
		t.Errorf("%d upstream connections opened for %d calls from %d callers, want at most about one per caller", n, callers*each, callers)
	}
}

// A server that is down when the gateway starts does not hold the others
// back: the gateway serves before that server's circuit breaker opens (10 s
// of refused connects), with the other server's tools, says which server it
// left out, and lists its tools once it comes up.
func TestGatewayServesWhileAServerIsDown(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "ping"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil, nil
	})
	upTS := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := ln.Addr().String()
	ln.Close() // refused until the server comes up on it
	later := mcp.NewServer(&mcp.Implementation{Name: "later", Version: "1"}, nil)
	mcp.AddTool(later, &mcp.Tool{Name: "hello"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello"}}}, nil, nil
	})
	laterTS := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return later }, nil))
	t.Cleanup(func() { // after the gateway has stopped (cleanups run last first)
		for _, s := range []*mcp.Server{up, later} {
			for ss := range s.Sessions() {
				_ = ss.Close()
			}
		}
		upTS.Close()
		laterTS.Close()
	})
	url, _, logs := startGateway(t, fmt.Sprintf(`{
  // one server is down at start
  "mcpServers": {
    "Down Server.old": {"url": "http://%s/mcp"},
    "up": {"url": %q}, // this one answers
  },
  "gateway": {"servers": {"Down Server.old": {"mode": "shared"}, "up": {"mode": "shared"}}}
}`, downAddr, upTS.URL+"/"))
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Servers []struct {
			Name    string `json:"name"`
			Breaker string `json:"breaker"`
		} `json:"servers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Servers {
		if s.Name == "Down Server.old" && s.Breaker != "closed" {
			t.Errorf("the gateway served only once the down server's breaker was %s", s.Breaker)
		}
	}
	if !strings.Contains(logs.String(), "serving without this server's catalog") || !strings.Contains(logs.String(), `server="Down Server.old"`) {
		t.Errorf("no warning names the server left out:\n%s", logs.String())
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "caller", Version: "1"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools := func() string {
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		return strings.Join(names, " ")
	}
	if got := tools(); !strings.Contains(got, "up__ping") || strings.Contains(got, "hello") {
		t.Fatalf("tools at first: %s; want the live server's only", got)
	}
	if ln, err = net.Listen("tcp", downAddr); err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	laterTS.Listener.Close()
	laterTS.Listener = ln
	laterTS.Start()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(tools(), "hello") {
		if time.Now().After(deadline) {
			t.Fatalf("the server's tools never came: %s", tools())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// boundListen keeps the host the user wrote and takes the port the
// listener got.
func TestBoundListen(t *testing.T) {
	for _, tc := range []struct{ listen, bound, want string }{
		{"localhost:0", "127.0.0.1:41234", "localhost:41234"},
		{"localhost:7300", "127.0.0.1:7300", "localhost:7300"},
		{"127.0.0.1:0", "127.0.0.1:41234", "127.0.0.1:41234"},
		{"[::1]:0", "[::1]:41234", "[::1]:41234"},
		{":7300", "[::]:7300", "[::]:7300"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := boundListen(tc.listen, addr); got != tc.want {
			t.Errorf("boundListen(%q, %s) = %q; want %q", tc.listen, tc.bound, got, tc.want)
		}
	}
}

// A gateway with auth listening on "localhost" is served, and names its
// resource (the default audience), at the localhost URL the user gave: a
// client checks that the Protected Resource Metadata's resource is the URL
// it used (RFC 9728 section 3.3).
func TestGatewayAuthLocalhostAudience(t *testing.T) {
	as := oauthtest.New(t)
	demoURL, stopDemo := startDemoServer(t)
	defer stopDemo()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}}, "gateway": {"auth": {"issuer": %q}}}`, demoURL, as.Issuer)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- runContext(ctx, []string{"gateway", "--config", path, "--listen", "localhost:0"}, io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-status; code != 0 {
			t.Errorf("gateway exited %d: %s", code, logs.String())
		}
	}()
	re := regexp.MustCompile(`url=(http://localhost:\d+/mcp)`)
	var url string
	deadline := time.After(60 * time.Second)
	for url == "" {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-status:
			status <- code
			t.Fatalf("gateway exited (%d) before serving: %s", code, logs.String())
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("gateway did not serve within 60s: %s", logs.String())
		}
	}
	resp, err := http.Get(strings.Replace(url, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Resource string `json:"resource"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || meta.Resource != url {
		t.Errorf("metadata resource %q (%v); want %q, the URL the gateway said it serves", meta.Resource, err, url)
	}
}
