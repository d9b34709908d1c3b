package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// With a token, the status page, /status.json and /metrics need it as /mcp
// does (the scheme in any case); /healthz and /readyz stay open.
func TestTokenGuardsStatusAndMetrics(t *testing.T) {
	up := newPool(t, mcpool.Config{URL: demoURL(t)})
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("m 1\n")) })
	_, url := startGateway(t, gateway.Options{Token: "s3cret", Metrics: metrics, Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)},
	}})
	base := strings.TrimSuffix(url, "/mcp")
	get := func(path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/", "/status.json", "/metrics"} {
		if code := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code := get(path, "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
		for _, auth := range []string{"Bearer s3cret", "bearer s3cret", "BEARER s3cret"} {
			if code := get(path, auth); code != http.StatusOK {
				t.Errorf("GET %s with %q: %d, want 200", path, auth, code)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := get(path, ""); code != http.StatusOK {
			t.Errorf("GET %s without the token: %d, want 200 (probes need no token)", path, code)
		}
	}

	// /mcp takes the scheme in any case too (RFC 7235).
	c := mcp.NewClient(&mcp.Implementation{Name: "d", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: scheme("bearer s3cret")}}, nil)
	if err != nil {
		t.Fatalf("connect with a lower-case bearer scheme: %v", err)
	}
	defer cs.Close()
	if _, err := call(ctx, cs, "demo__echo", map[string]any{"message": "hi"}); err != nil {
		t.Fatal(err)
	}
}

type scheme string

func (s scheme) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", string(s))
	return http.DefaultTransport.RoundTrip(r)
}
