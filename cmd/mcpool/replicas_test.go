package main

import (
	"context"
	"encoding/base64"
	"fmt"
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

	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// haproxyConfig is the load balancer in front of the gateway replicas:
// round-robin, no stickiness. The retries are what a deployment needs for
// replicas to come and go: a request refused before it was read (connection
// refused by a dead replica, 503 from a draining one) is sent to another
// replica; /readyz takes a draining replica out of the rotation. timeout
// check: without it a check's answer must come within inter (200 ms
// here), and on a loaded machine one slow /readyz from each live replica
// (fall 1) leaves no server at all: HAProxy answers 503 itself.
const haproxyConfig = `global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout check 2s
  timeout client 5m
  timeout server 5m
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response 503
frontend mcp
  bind %s
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
%s
# Servers in isolated mode keep per-session state on the replica that
# created the session: this frontend sends a session's requests there,
# learning the id from the initialize response.
frontend sticky
  bind %s
  default_backend sticky
backend sticky
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  stick-table type string len 2048 size 100k expire 30m
  stick on req.hdr(Mcp-Session-Id)
  stick store-response res.hdr(Mcp-Session-Id)
%s`

// replicaProc is one gateway process.
type replicaProc struct {
	bin  string
	args []string
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

func (r *replicaProc) start() error {
	r.mu.Lock()
	r.logs = &lockedBuffer{}
	r.cmd = exec.Command(r.bin, append(r.args, "--listen", r.addr)...)
	r.cmd.Stderr = r.logs
	r.cmd.Env = append(os.Environ(), "MCPOOL_GATEWAY_TOKEN="+replicaToken, "MCPOOL_SESSION_KEY="+replicaKey)
	if err := r.cmd.Start(); err != nil {
		r.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	r.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	return waitReady("http://"+r.addr+"/readyz", done, r.logs)
}

func (r *replicaProc) signal(sig syscall.Signal) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.cmd.Process.Signal(sig)
	return r.done
}

func (r *replicaProc) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

const (
	replicaToken = "replica-test-token"
	replicaKey   = "a shared key of at least 16 bytes"
)

func waitReady(url string, exited <-chan struct{}, logs *lockedBuffer) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: process exited before it was ready: %s", url, logs)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buildMcpool builds the command (without the race detector: three
// gateways and the load run on a shared machine).
func buildMcpool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mcpool")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The done-when check: three `mcpool gateway` processes sharing a session
// key and a real Redis, behind HAProxy round-robin with no stickiness. A
// 2025-11-25 session makes 300 calls while one replica is SIGKILLed and
// another drained (SIGTERM) and restarted: all succeed, on one session.
// list_changed reaches the session wherever its GET stream is; forged and
// tampered ids get 404, another token 401; a 2026-07-28 client makes
// 20,000 stateless calls, none failing, while a replica is drained and
// restarted.
func TestReplicasBehindHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (scripts/test installs Debian's haproxy)")
	}
	rs := redistest.Start(t)
	bin := buildMcpool(t)

	// Upstreams: an in-process server whose tools the test changes, and the
	// demo server as a process of its own for the load.
	up := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	echo := func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
	}
	mcp.AddTool(up, &mcp.Tool{Name: "echo"}, echo)
	upTS := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	defer func() {
		for ss := range up.Sessions() {
			_ = ss.Close()
		}
		upTS.Close()
	}()
	demoAddr := freeAddr(t)
	demo := exec.Command(bin, "demo-server", "--http", demoAddr)
	demoLogs := &lockedBuffer{}
	demo.Stderr = demoLogs
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	demoDone := make(chan struct{})
	go func() { _ = demo.Wait(); close(demoDone) }()
	defer func() { _ = demo.Process.Signal(syscall.SIGTERM); <-demoDone }()

	config := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(config, fmt.Appendf(nil, `{
  "mcpServers": {"up": {"type": "http", "url": %q}, "demo": {"type": "http", "url": "http://%s/mcp"},
    "iso": {"command": %q, "args": ["demo-server", "--stdio"]}},
  "gateway": {"servers": {"up": {"mode": "shared"}, "demo": {"mode": "shared"}, "iso": {"mode": "isolated", "spares": 1}}}
}`, upTS.URL, demoAddr, bin), 0o600); err != nil {
		t.Fatal(err)
	}
	var replicas []*replicaProc
	var servers strings.Builder
	for i := range 3 {
		r := &replicaProc{bin: bin, addr: freeAddr(t)}
		r.args = []string{"gateway", "--config", config, "--redis", rs.URL(), "--drain-timeout", "5s", "--advertise-url", "http://" + r.addr + "/mcp"}
		replicas = append(replicas, r)
		fmt.Fprintf(&servers, "  server g%d %s check inter 200ms fall 1 rise 1\n", i, r.addr)
	}
	for _, r := range replicas {
		defer r.stop()
		if err := r.start(); err != nil {
			t.Fatal(err)
		}
	}
	lbAddr, stickyAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, lbAddr, servers.String(), stickyAddr, servers.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := exec.Command(haproxy, "-db", "-f", cfg)
	lbLogs := &lockedBuffer{}
	lb.Stdout, lb.Stderr = lbLogs, lbLogs
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	lbDone := make(chan struct{})
	go func() { _ = lb.Wait(); close(lbDone) }()
	defer func() { _ = lb.Process.Signal(syscall.SIGTERM); <-lbDone }()
	if err := waitReady("http://"+lbAddr+"/healthz", lbDone, lbLogs); err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + lbAddr + "/mcp"
	httpClient := &http.Client{Transport: headerTransport{bearer(replicaToken), &http.Transport{MaxIdleConnsPerHost: 64}}}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// A 2025-11-25 session, 300 calls, replicas dying and draining.
	var changed atomic.Int64
	client := mcp.NewClient(&mcp.Implementation{Name: "replicas-test", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed.Add(1) },
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through HAProxy: %v", err)
	}
	defer cs.Close()
	id := cs.ID()
	var failed []string
	var restarted sync.WaitGroup
	for i := range 300 {
		switch i {
		case 100:
			<-replicas[0].signal(syscall.SIGKILL)
		case 200:
			restarted.Go(func() {
				<-replicas[1].signal(syscall.SIGTERM)
				if err := replicas[1].start(); err != nil {
					t.Error(err)
				}
			})
		}
		got, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "up__echo", Arguments: map[string]any{"text": fmt.Sprint(i)}})
		if err != nil || got.IsError || len(got.Content) == 0 || got.Content[0].(*mcp.TextContent).Text != fmt.Sprint(i) {
			failed = append(failed, fmt.Sprintf("call %d: %v", i, err))
		}
	}
	restarted.Wait()
	if len(failed) > 0 || cs.ID() != id {
		t.Fatalf("%d of 300 calls failed (session %v kept): %v\nreplica 1 log:\n%s", len(failed), cs.ID() == id, failed, replicas[1].logs)
	}
	if err := replicas[0].start(); err != nil { // back to three
		t.Fatal(err)
	}

	// list_changed reaches the session's GET stream, on whichever replica.
	// A stream that a drain or a replica's death broke moments ago may
	// still be reconnecting (after its 1s retry hint), and a notification
	// sent meanwhile is not replayed: the server changes again until one
	// arrives.
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; changed.Load() == 0; n++ {
		if n%200 == 0 { // every 2s
			mcp.AddTool(up, &mcp.Tool{Name: fmt.Sprintf("added%d", n/200)}, echo)
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, r := range replicas {
				r.mu.Lock()
				fmt.Fprintf(&logs, "replica %d log:\n%s\n", i, r.logs)
				r.mu.Unlock()
			}
			t.Fatalf("no list_changed reached the session within 30s\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Session ids are no credentials, and only the deployment's own open
	// sessions.
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	raw[len(raw)/2] ^= 1
	for name, c := range map[string]struct {
		id, token string
		want      int
	}{
		"tampered":      {base64.RawURLEncoding.EncodeToString(raw), replicaToken, http.StatusNotFound},
		"forged":        {base64.RawURLEncoding.EncodeToString(append([]byte{1}, make([]byte, 90)...)), replicaToken, http.StatusNotFound},
		"another token": {id, "another-token", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Mcp-Session-Id", c.id)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, c.want)
		}
	}

	// A 2026-07-28 client: stateless calls, a replica drained and restarted
	// meanwhile.
	const calls, workers = 20000, 16
	stateless, err := mcp.NewClient(&mcp.Implementation{Name: "replicas-test", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient}, nil)
	if err != nil {
		t.Fatalf("connect (2026-07-28): %v", err)
	}
	defer stateless.Close()
	var next, fails atomic.Int64
	var firstErr atomic.Value
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > calls {
					return
				}
				if i == calls/2 {
					restarted.Go(func() {
						<-replicas[2].signal(syscall.SIGTERM)
						if err := replicas[2].start(); err != nil {
							t.Error(err)
						}
					})
				}
				res, err := stateless.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "x"}})
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %v", res.Content)
				}
				if err != nil {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("call %d: %v", i, err))
				}
			}
		})
	}
	wg.Wait()
	restarted.Wait()
	took := time.Since(start)
	t.Logf("2026-07-28: %d calls in %v (%.0f/s; the test process, client and race detector, used %v of CPU), %d failed",
		calls, took.Round(time.Millisecond), calls/took.Seconds(), (selfCPU() - cpu0).Round(time.Millisecond), fails.Load())
	if fails.Load() > 0 {
		t.Fatalf("%d of %d stateless calls failed; first: %v\nHAProxy:\n%s", fails.Load(), calls, firstErr.Load(), lbLogs)
	}

	// An isolated stdio server: its upstream session lives on the replica
	// that created the downstream session. Round-robin, the other replicas
	// forward the session's requests there (--advertise-url); through the
	// sticky frontend they land there.
	for _, c := range []struct {
		addr   string
		sticky bool
	}{{lbAddr, false}, {stickyAddr, true}} {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + c.addr + "/mcp", HTTPClient: httpClient},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatalf("connect (sticky %v): %v", c.sticky, err)
		}
		var ok, lost int
		for range 12 {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__echo", Arguments: map[string]any{"message": "m"}})
			switch {
			case err == nil && !res.IsError:
				ok++
			case err != nil && strings.Contains(err.Error(), "start a new session"):
				lost++
			default:
				t.Errorf("isolated call (sticky %v): %v %v", c.sticky, res, err)
			}
		}
		cs.Close()
		if ok != 12 {
			t.Errorf("isolated calls, sticky %v: %d succeeded, %d told the state was lost", c.sticky, ok, lost)
		}
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Without --session-key, a gateway that looks like one of several (with
// --redis, sessions kept) says at start that sessions stay on their replica.
func TestGatewayWarnsWithoutSessionKey(t *testing.T) {
	rs := redistest.Start(t)
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server {
		return mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	}, nil))
	defer up.Close()
	config := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(config, fmt.Appendf(nil, `{"mcpServers": {"up": {"type": "http", "url": %q}},
  "gateway": {"servers": {"up": {"mode": "shared"}}}}`, up.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--redis", rs.URL(), "--stateless=false"}, true},
		{[]string{"--redis", rs.URL(), "--session-key", replicaKey}, false},
		{[]string{"--redis", rs.URL()}, false}, // stateless
	} {
		ctx, cancel := context.WithCancel(context.Background())
		logs := &lockedBuffer{}
		status := make(chan int, 1)
		go func() {
			status <- runContext(ctx, append([]string{"gateway", "--config", config, "--listen", "127.0.0.1:0"}, c.args...), os.Stdout, logs)
		}()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(logs.String(), "serving MCP") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if code := <-status; code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, logs)
		}
		if got := strings.Contains(logs.String(), "set --session-key"); got != c.warn {
			t.Errorf("%v: warned %v, want %v: %s", c.args, got, c.warn, logs)
		}
	}
}

// The replica's address for the others: the flag's, else the config's,
// else one derived from a listen address that names one reachable host.
func TestGatewayAdvertiseURL(t *testing.T) {
	for _, c := range []struct {
		flagged, configured, listen string
		keys, stdio                 bool
		want                        string
		usage                       bool
	}{
		{"http://10.0.0.9:7300/mcp", "http://x/mcp", "0.0.0.0:7300", true, false, "http://10.0.0.9:7300/mcp", false},
		{"", "http://x:1/mcp", "0.0.0.0:7300", true, false, "http://x:1/mcp", false},
		{"", "", "10.0.0.5:7300", true, false, "http://10.0.0.5:7300/mcp", false},
		{"", "", "gw-1.internal:7300", true, false, "http://gw-1.internal:7300/mcp", false},
		{"", "", "0.0.0.0:7300", true, false, "", false},
		{"", "", "[::]:7300", true, false, "", false},
		{"", "", ":7300", true, false, "", false},
		{"", "", "127.0.0.1:7300", true, false, "", false},
		{"", "", "10.0.0.5:0", true, false, "", false},
		{"", "", "10.0.0.5:7300", false, false, "", false},
		{"", "", "10.0.0.5:7300", true, true, "", false},
		{"http://10.0.0.9:7300/mcp", "", "10.0.0.5:7300", false, false, "", true},
	} {
		got, err := gatewayAdvertiseURL(c.flagged, c.configured, c.listen, c.keys, c.stdio)
		if got != c.want || (err != nil) != c.usage {
			t.Errorf("%+v: %q, %v", c, got, err)
		}
	}
}
