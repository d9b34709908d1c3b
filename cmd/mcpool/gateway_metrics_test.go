package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// `curl /metrics` on the gateway lists the pool metrics of every server.
func TestGatewayMetrics(t *testing.T) {
	demoURL, stopDemo := startDemoServer(t)
	defer stopDemo()
	url, stop, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {"demo": {"type": "http", "url": %q}},
  "gateway": {"servers": {"demo": {"mode": "shared"}}}
}`, demoURL))
	defer func() {
		if code := stop(); code != 0 {
			t.Errorf("gateway exit status %d: %s", code, logs.String())
		}
	}()
	if r := runCLI(t, "call", "--url", url, "demo__echo", `{"message":"hi"}`); r.code != 0 {
		t.Fatalf("call through the gateway: %d %s", r.code, r.stderr)
	}
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`mcpool_sessions{server="demo",state="active"}`,
		`mcpool_calls_in_flight{server="demo"}`,
		`mcpool_waiters{server="demo"}`,
		`mcpool_acquire_wait_seconds_count{server="demo"}`,
		`mcpool_call_duration_seconds_count{outcome="ok",server="demo",tool="echo"} 1`,
		`process_resident_memory_bytes`,
		`mcpool_gateway_calls_in_flight{server="demo"} 0`,
		`mcpool_gateway_callers_queued{server="demo"} 0`,
		`mcpool_gateway_refused_total{server="demo"} 0`,
		`mcpool_gateway_draining 0`,
		`mcpool_gateway_isolated_sessions 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
