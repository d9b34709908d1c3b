package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/stdio"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// gateStdioEnv makes the test binary a stdio server (main_test.go): the gate
// server's set and get, which keep a value per process, and pid.
const gateStdioEnv = "MCPOOL_TEST_GATE_STDIO"

// runGateStdio serves the gate server, and a pid tool, on stdin and stdout.
func runGateStdio() {
	s := newGate().server()
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "Returns the server's process id."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(os.Getpid())}}}, nil, nil
		})
	if err := s.Run(context.Background(), stdio.Transport()); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// gateStdio is the config of an isolated stdio server with per-process
// state: this test binary, re-executed.
func gateStdio(t *testing.T) mcpool.Config {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The race detector makes a process sleep 1s at exit unless told not to.
	return mcpool.Config{Command: &mcpool.Command{Path: exe, Env: append(os.Environ(), gateStdioEnv+"=1", "GORACE=atexit_sleep_ms=0")}}
}

// forwardReplica is one gateway of forwardReplicas.
type forwardReplica struct {
	g   *gateway.Gateway
	ts  *httptest.Server
	url string // base URL
}

// stop closes the replica, as a replica that died would be.
func (r *forwardReplica) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.g.Close(ctx); err != nil {
		t.Errorf("gateway Close: %v", err)
	}
	r.ts.Close()
}

// forwardReplicas starts n gateways sharing a session key, each advertising
// its own address, with an isolated stdio server "iso" and a shared HTTP
// server "up".
func forwardReplicas(t *testing.T, n int) []*forwardReplica {
	t.Helper()
	up, _ := echoUpstream(t)
	var out []*forwardReplica
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := newPool(t, mcpool.Config{URL: up})
		g, err := gateway.New(gateway.Options{
			Servers: []gateway.Server{
				{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)},
				{Name: "iso", Mode: gateway.ModeIsolated, Config: gateStdio(t), Spares: -1},
			},
			SessionKeys:  [][]byte{[]byte("a key of 32 bytes for the tests!")},
			AdvertiseURL: "http://" + ln.Addr().String(),
			Logger:       quiet(),
		})
		if err != nil {
			ln.Close()
			t.Fatalf("gateway.New: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = g.Start(ctx)
		cancel()
		if err != nil {
			ln.Close()
			t.Fatalf("Start: %v", err)
		}
		ts := httptest.NewUnstartedServer(g.Handler())
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		r := &forwardReplica{g: g, ts: ts, url: ts.URL}
		t.Cleanup(func() { r.stop(t) })
		out = append(out, r)
	}
	return out
}

// rotation is a round-robin load balancer with no stickiness whose
// replicas can change, as a load balancer's health checks take a dead one
// out.
type rotation struct {
	replicas atomic.Pointer[[]string]
	next     atomic.Int64
	landed   atomic.Int64 // requests sent to a replica other than the first
}

func newRotation(urls ...string) *rotation {
	r := &rotation{}
	r.set(urls...)
	return r
}

func (b *rotation) set(urls ...string) { b.replicas.Store(&urls) }

func (b *rotation) RoundTrip(r *http.Request) (*http.Response, error) {
	replicas := *b.replicas.Load()
	i := int(b.next.Add(1)-1) % len(replicas)
	if i > 0 {
		b.landed.Add(1)
	}
	u, _ := url.Parse(replicas[i])
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

func rotationClient(t *testing.T, b *rotation) *mcp.ClientSession {
	t.Helper()
	return balancedClient(t, b, nil)
}

// An isolated stdio server's upstream session is a process on the replica
// that created the downstream session: behind a round-robin balancer over
// three replicas, the others forward the session's requests there, so that
// its state continues in one process.
func TestForwardIsolatedStdioToItsReplica(t *testing.T) {
	rs := forwardReplicas(t, 3)
	b := newRotation(rs[0].url, rs[1].url, rs[2].url)
	cs := rotationClient(t, b) // initialize lands on the first
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "iso__set", map[string]any{"value": "kept"}); err != nil {
		t.Fatalf("set: %v", err)
	}
	pids := map[string]bool{}
	for i := range 12 {
		got, err := call(ctx, cs, "iso__get", nil)
		if err != nil || got != "value=kept" {
			t.Fatalf("get %d: %q, %v; want the session's state on every replica", i, got, err)
		}
		pid, err := call(ctx, cs, "iso__pid", nil)
		if err != nil {
			t.Fatalf("pid %d: %v", i, err)
		}
		pids[pid] = true
		if got, err := call(ctx, cs, "up__echo", map[string]any{"text": "x"}); err != nil || got != "x" {
			t.Fatalf("shared call %d: %q, %v", i, got, err)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("upstream processes that served the session: %v; want one", pids)
	}
	if b.landed.Load() < 20 {
		t.Fatalf("only %d requests landed on replicas other than the session's", b.landed.Load())
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	// The client's DELETE, taken by another replica, ends the session on
	// its owner, with its upstream process.
	b.set(rs[1].url)
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var pid int
	for p := range pids {
		pid, _ = strconv.Atoi(p)
	}
	eventually(t, "the session's upstream process to exit", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
}

// Only the replicas set the hop header: a client's forged one gets 403, on
// the owner and elsewhere, and the session is not served from it.
func TestForwardRefusesForgedHops(t *testing.T) {
	rs := forwardReplicas(t, 2)
	cs := rotationClient(t, newRotation(rs[0].url))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "iso__set", map[string]any{"value": "v"}); err != nil {
		t.Fatal(err)
	}
	now := fmt.Sprint(time.Now().Unix())
	for _, forged := range []string{now + ".AAAA", now + "." + strings.Repeat("A", 43), "garbage"} {
		for i, r := range rs {
			req, _ := http.NewRequest(http.MethodPost, r.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
			req.Header.Set("Mcp-Session-Id", cs.ID())
			req.Header.Set("Mcpool-Hop", forged)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("forged hop %q on replica %d: %d, want 403", forged, i, resp.StatusCode)
			}
		}
	}
	// Without the header, the other replica forwards it.
	if got := rawPost(t, rs[1].url, cs.ID(), ""); got != http.StatusOK {
		t.Fatalf("the session on the other replica: %d, want 200", got)
	}
}

// When the replica holding the session's stdio server is gone, the
// session's next call to that server gets CodeSessionLost, telling the
// client to start a new session, on whichever replica takes it; calls to
// shared servers continue.
func TestForwardOwnerGoneSessionLost(t *testing.T) {
	rs := forwardReplicas(t, 3)
	b := newRotation(rs[0].url, rs[1].url, rs[2].url)
	cs := rotationClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 3 {
		if _, err := call(ctx, cs, "iso__set", map[string]any{"value": "v"}); err != nil {
			t.Fatal(err)
		}
	}
	rs[0].stop(t)
	b.set(rs[1].url, rs[2].url)
	for i := range 4 { // both remaining replicas
		_, err := call(ctx, cs, "iso__get", nil)
		if rpcCode(err) != gateway.CodeSessionLost || !strings.Contains(err.Error(), "start a new session") {
			t.Fatalf("call %d after the owner stopped: %v; want CodeSessionLost saying to start a new session", i, err)
		}
		if got, err := call(ctx, cs, "up__echo", map[string]any{"text": "x"}); err != nil || got != "x" {
			t.Fatalf("shared call %d after the owner stopped: %q, %v", i, got, err)
		}
	}
	// A new session works, on the replicas left.
	cs2 := rotationClient(t, b)
	if _, err := call(ctx, cs2, "iso__set", map[string]any{"value": "w"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if got, err := call(ctx, cs2, "iso__get", nil); err != nil || got != "value=w" {
			t.Fatalf("new session, get %d: %q, %v", i, got, err)
		}
	}
}
