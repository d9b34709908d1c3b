package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
)

// What a web page could send through a visitor's browser is refused on
// every path: a loopback gateway reached under another host name (DNS
// rebinding) and a cross-origin POST. Clients that are not browsers, and
// a page of the gateway's own origin, are served.
func TestBrowserRequestsRefused(t *testing.T) {
	pool := newPool(t, mcpool.Config{URL: demoURL(t)})
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)},
	}})
	base := strings.TrimSuffix(url, "/mcp")
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		want                     int
	}{
		{"status page under a rebound host", "GET", "/", "", map[string]string{"Host": "attacker.example"}, http.StatusForbidden},
		{"status figures under a rebound host", "GET", "/status.json", "", map[string]string{"Host": "attacker.example:80"}, http.StatusForbidden},
		{"mcp under a rebound host", "POST", "/mcp", initialize, map[string]string{"Host": "attacker.example"}, http.StatusForbidden},
		{"cross-origin POST", "POST", "/mcp", initialize, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", "POST", "/mcp", initialize, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"status figures", "GET", "/status.json", "", nil, http.StatusOK},
		{"a client that is not a browser", "POST", "/mcp", initialize, nil, http.StatusOK},
		{"the gateway's own origin", "POST", "/mcp", initialize, map[string]string{"Origin": base}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tc.header {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d %q; want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if resp.StatusCode == http.StatusForbidden && !strings.Contains(string(body), "Forbidden") {
				t.Errorf("refusal %q does not say why", body)
			}
		})
	}
	// A load balancer's HTTP/1.0 health check names no host: served.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /readyz HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("an HTTP/1.0 health check without Host: %d; want 200", resp.StatusCode)
	}
}
