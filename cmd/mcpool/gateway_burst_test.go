package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func filesystemJS(t *testing.T) string {
	t.Helper()
	js, err := filepath.Abs("../../testdata/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("server-filesystem is not installed (%v): run scripts/test", err)
	}
	return js
}

// burstCall is one call's fate.
type burstCall struct {
	took       time.Duration // from the session's connect to the call's answer (retries included)
	callTook   time.Duration // the tools/call alone
	err        error
	overloaded bool  // CodeOverloaded
	retryMs    int64 // its retryAfterMs
}

// sessionCall opens a session to the gateway, calls tool once and closes
// the session: a client that opens a session per call.
func sessionCall(ctx context.Context, url, tool string, args map[string]any) burstCall {
	start := time.Now()
	c := mcp.NewClient(&mcp.Implementation{Name: "burst", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return burstCall{took: time.Since(start), err: fmt.Errorf("connect to the gateway: %w", err)}
	}
	defer cs.Close()
	callStart := time.Now()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	r := burstCall{took: time.Since(start), callTook: time.Since(callStart), err: err}
	var je *jsonrpc.Error
	if errors.As(err, &je) && je.Code == gateway.CodeOverloaded {
		r.overloaded = true
		var data gateway.ErrorData
		_ = json.Unmarshal(je.Data, &data)
		r.retryMs = data.RetryAfterMs
	}
	if err == nil && res.IsError {
		r.err = fmt.Errorf("tool error: %v", res.Content)
	}
	return r
}

// burst runs clients goroutines that each make perClient calls, each on a
// session of its own; retry says whether a refused call is retried after
// its retryAfterMs (until it succeeds or 15 minutes pass).
func burst(t *testing.T, url, tool string, args map[string]any, clients, perClient int, retry bool) (calls []burstCall, refusals []burstCall) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range perClient {
				start := time.Now()
				for {
					r := sessionCall(ctx, url, tool, args)
					if r.overloaded {
						mu.Lock()
						refusals = append(refusals, r)
						mu.Unlock()
						if retry && ctx.Err() == nil {
							time.Sleep(time.Duration(max(r.retryMs, 100)) * time.Millisecond)
							continue
						}
					}
					r.took = time.Since(start)
					mu.Lock()
					calls = append(calls, r)
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	return calls, refusals
}

func percentiles(calls []burstCall) (p50, p99 time.Duration) {
	var d []time.Duration
	for _, c := range calls {
		if c.err == nil {
			d = append(d, c.took)
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1)+0.5)] }
	return q(0.5), q(0.99)
}

type connectFigures struct {
	Max       int   `json:"max"`
	Limit     int   `json:"limit"`
	MaxQueued int   `json:"maxQueued"`
	Admitted  int   `json:"admitted"`
	MeanWait  int64 `json:"meanWaitNs"`
	MaxWait   int64 `json:"maxWaitNs"`
	MeanConn  int64 `json:"meanConnectNs"`
}

type gatewayStatus struct {
	Connects connectFigures `json:"connects"`
	Servers  []struct {
		Connects connectFigures `json:"connects"`
	} `json:"servers"`
}

func readStatus(t *testing.T, url string) gatewayStatus {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st gatewayStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c connectFigures) String() string {
	return fmt.Sprintf("turns %d (%d at the end), %d connects admitted, max queued %d, mean wait %v, max wait %v, mean connect %v",
		c.Max, c.Limit, c.Admitted, c.MaxQueued, time.Duration(c.MeanWait).Round(time.Millisecond), time.Duration(c.MaxWait).Round(time.Millisecond),
		time.Duration(c.MeanConn).Round(time.Millisecond))
}

func (st gatewayStatus) String() string {
	s := "gateway-wide connects: " + st.Connects.String()
	for _, srv := range st.Servers {
		s += "; the server's: " + srv.Connects.String()
	}
	return s
}

func filesystemGateway(t *testing.T) (url string, stop func() int, logs *lockedBuffer, dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The default mode (isolated) and the default gateway settings.
	url, stop, logs = startGateway(t, fmt.Sprintf(`{"mcpServers": {"fs": {"command": "node", "args": [%q, %q]}}}`, filesystemJS(t), dir))
	return url, stop, logs, dir
}

// 32 clients that each open a session per call, through the gateway to
// server-filesystem in the default isolated mode: the connect limiter
// spaces the Node processes, so that none misses its ConnectTimeout, and
// every call succeeds (a client told "overloaded" retries after
// retryAfterMs, as the error asks). SIGTERM then leaves no process.
func TestGatewayIsolatedBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 160 Node processes")
	}
	url, stop, logs, dir := filesystemGateway(t)
	calls, refusals := burst(t, url, "fs__list_directory", map[string]any{"path": dir}, 32, 5, true)
	var failed []error
	for _, c := range calls {
		if c.err != nil {
			failed = append(failed, c.err)
		}
	}
	p50, p99 := percentiles(calls)
	st := readStatus(t, url)
	t.Logf("32 clients, session per call: %d calls, %d failed, %d refusals retried; p50 %v, p99 %v; %v",
		len(calls), len(failed), len(refusals), p50.Round(time.Millisecond), p99.Round(time.Millisecond), st)
	if len(calls) != 160 || len(failed) > 0 {
		t.Errorf("%d calls, %d failed, want 160 and 0: %v", len(calls), len(failed), failed[:min(len(failed), 3)])
	}
	for _, e := range failed {
		if strings.Contains(e.Error(), "ConnectTimeout") {
			t.Errorf("a connect timed out: %v", e)
			break
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d after SIGTERM: %s", code, logs.String())
	}
	wantNoChildren(t)
}

// With 64 clients, more than the machine can start in a queue wait, every
// call either succeeds or is refused with CodeOverloaded and a
// retryAfterMs: never a connect timeout, and never after the queue wait
// (most at once: a connect whose turn is estimated to come too late does
// not queue, and a queued one leaves as soon as the estimate says so).
func TestGatewayIsolatedBurstOverload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many Node processes")
	}
	url, stop, logs, dir := filesystemGateway(t)
	calls, refusals := burst(t, url, "fs__list_directory", map[string]any{"path": dir}, 64, 2, false)
	ok := 0
	var slowest time.Duration
	for _, c := range calls {
		switch {
		case c.err == nil:
			ok++
		case c.overloaded:
			if c.retryMs <= 0 {
				t.Errorf("overloaded without retryAfterMs: %v", c.err)
			}
			slowest = max(slowest, c.callTook)
			// The queue wait bounds the wait for a turn; the rest is the
			// session's own set-up on a loaded machine.
			if c.callTook >= gateway.DefaultQueueWait+2*time.Second {
				t.Errorf("refused after %v: longer than the queue wait (%v)", c.callTook, gateway.DefaultQueueWait)
			}
		default:
			t.Errorf("call failed other than overloaded: %v", c.err)
		}
	}
	p50, p99 := percentiles(calls)
	st := readStatus(t, url)
	t.Logf("64 clients, session per call: %d calls, %d ok, %d refused (slowest refusal %v after the session was open); p50 %v, p99 %v of those that succeeded; %v",
		len(calls), ok, len(refusals), slowest.Round(time.Millisecond), p50.Round(time.Millisecond), p99.Round(time.Millisecond), st)
	if ok == 0 {
		t.Errorf("no call succeeded")
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d after SIGTERM: %s", code, logs.String())
	}
	wantNoChildren(t)
}

// /metrics of a gateway in isolated mode counts the calls and their
// latency per server, though they never touch the Group's pool.
func TestGatewayIsolatedMetrics(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	selfCommand(t)
	// The demo server over stdio, in the default (isolated) mode.
	url, stop, logs := startGateway(t, fmt.Sprintf(`{"mcpServers": {"fs": {"command": %q, "args": ["demo-server", "--stdio"]}}}`, exe))
	for range 3 {
		if r := sessionCall(context.Background(), url, "fs__echo", map[string]any{"message": "hi"}); r.err != nil {
			t.Fatalf("call: %v", r.err)
		}
	}
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mcpool_gateway_requests_total{method="tools/call",outcome="ok",server="fs"} 3`,
		`mcpool_gateway_request_duration_seconds_count{method="tools/call",server="fs"} 3`,
		`mcpool_gateway_request_duration_seconds_bucket{method="tools/call",server="fs",le="+Inf"} 3`,
		`mcpool_gateway_connects{state="queued"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The status page counts the same calls.
	resp, err = http.Get(strings.TrimSuffix(url, "/mcp") + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st gateway.Status
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Servers) != 1 || st.Servers[0].TotalCalls != 3 {
		t.Errorf("/status.json servers = %+v, want fs with 3 calls", st.Servers)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d: %s", code, logs.String())
	}
	wantNoChildren(t)
}
