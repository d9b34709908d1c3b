package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/oauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerTransport sets headers on every request, then sends it with base
// (http.DefaultTransport if nil).
type headerTransport struct {
	set  map[string]string
	base http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.set {
		r.Header.Set(k, v)
	}
	if h.base == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return h.base.RoundTrip(r)
}

// bearer is the header of a request authenticated with token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// A config full of marked secrets, a gateway driven through failures (an
// unreachable server, a server answering 401, a failed token exchange, a
// crashing stdio server, bad tokens): no marked secret appears in its
// log, /status.json, /metrics or the errors its clients get.
func TestGatewayShowsNoSecret(t *testing.T) {
	as := oauthtest.New(t)
	as.OnExchange(func(subject, audience string) (string, int) { return "", http.StatusBadRequest })
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer refuse.Close()
	addr := strings.TrimPrefix(refuse.URL, "http://")
	url, stop, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {
    "down": {"type": "http", "url": "http://127.0.0.1:1/mcp?key=SECRET-1", "headers": {"X-Api-Key": "SECRET-2"}},
    "refused": {"type": "http", "url": "http://user:SECRET-3@%s/mcp?token=SECRET-4", "headers": {"Authorization": "Bearer SECRET-5"}},
    "crash": {"command": "sh", "args": ["-c", "echo \"key is $API_KEY\" >&2; exit 1"], "env": {"API_KEY": "SECRET-6"}},
    "x": {"type": "http", "url": %q}
  },
  "gateway": {
    "auth": {"issuer": %q},
    "servers": {
      "down": {"mode": "shared"},
      "refused": {"mode": "isolated"},
      "crash": {"mode": "shared"},
      "x": {"mode": "passthrough", "tokenExchange": {"tokenURL": %q, "clientID": "gw", "clientSecret": "SECRET-7", "audience": "urn:x"}}
    }
  }
}`, addr, refuse.URL+"/x?k=SECRET-8", as.Issuer, as.URL+"/token"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	token := as.Token(url, "alice")
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: headerTransport{set: bearer(token)}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, logs.String())
	}
	var shown []string
	for _, name := range []string{"down__echo", "refused__echo", "crash__echo", "x__echo"} {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
		if err == nil {
			t.Errorf("%s succeeded; want a failure", name)
			continue
		}
		shown = append(shown, "error of "+name+": "+err.Error())
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		shown = append(shown, "tools/list: "+err.Error())
	}
	cs.Close()
	base := strings.TrimSuffix(url, "/mcp")
	for _, p := range []string{"/status.json", "/metrics", "/mcp"} {
		for _, tok := range []string{token, "SECRET-9-bad-token"} {
			req, _ := http.NewRequest(http.MethodGet, base+p, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			shown = append(shown, p+": "+resp.Status+" "+fmt.Sprint(resp.Header)+string(b))
		}
	}
	stop()
	shown = append(shown, "log: "+logs.String())
	if testing.Verbose() {
		t.Log(strings.Join(shown, "\n"))
	}
	marked := regexp.MustCompile(`SECRET-\d`)
	for _, s := range shown {
		if m := marked.FindAllString(s, -1); m != nil {
			t.Errorf("%v shown in %s", m, s)
		}
	}
	if !strings.Contains(logs.String(), "***") {
		t.Errorf("the log hid nothing; did the failures happen?\n%s", logs.String())
	}
}

// mcpool call --oauth against an OAuth gateway completes the sign-in a
// person would: the gateway's 401 points at its Protected Resource
// Metadata, which names the authorization server; the browser step (here
// curl following the redirects, as $BROWSER) approves at once; the token
// is issued with resource = the gateway, which accepts it.
func TestCallOAuthSignInThroughGateway(t *testing.T) {
	as := oauthtest.New(t)
	s := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(s, false, 0))
	defer func() {
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	}()
	url, _, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {"demo": {"type": "http", "url": %q}},
  "gateway": {"auth": {"issuer": %q, "scopes": ["mcp:tools"]}, "servers": {"demo": {"mode": "shared"}}}
}`, ts.URL, as.Issuer))
	t.Setenv("BROWSER", filepath.Join("testdata", "curl-browser.sh"))
	r := runCLI(t, "call", "--url", url, "--oauth", "demo__echo", `{"message":"signed in"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "signed in") {
		t.Fatalf("call --oauth: status %d, stdout %q, stderr %q\ngateway log:\n%s", r.code, r.stdout, r.stderr, logs.String())
	}
	if n := as.Issued.Load(); n != 1 {
		t.Errorf("the authorization server issued %d tokens, want 1", n)
	}
}

// Rate-limited calls are counted per server in /metrics, and the audit log
// (--audit-log -, stderr) has one line per call.
func TestGatewayRateLimitMetricsAndAudit(t *testing.T) {
	s := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(s, false, 0))
	defer func() {
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	}()
	url, _, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {"demo": {"type": "http", "url": %q}},
  "gateway": {"rateLimit": {"perIdentity": {"rate": 0.001, "burst": 2}}, "servers": {"demo": {"mode": "shared"}}}
}`, ts.URL), "--audit-log", "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var errs []error
	for range 3 {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || !strings.Contains(errs[2].Error(), "rate limited") {
		t.Errorf("calls: %v; want two served and the third rate limited", errs)
	}
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `mcpool_gateway_rate_limited_total{server="demo"} 1`) {
		t.Errorf("/metrics has no rate-limited count of 1 for demo")
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"kind":"tool"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 3 || !strings.Contains(lines[2], `"outcome":"rate_limited"`) || strings.Contains(logs.String(), `"hi"`) {
		t.Errorf("audit lines %q; want 3, the last rate_limited, no arguments", lines)
	}
}

// gateway.auth's clientID and clientSecret (given as ${VAR}) authenticate
// the gateway to the introspection endpoint, which refuses anyone else, so
// that an opaque token is accepted; the secret is recorded for redaction.
func TestGatewayIntrospectionAuthenticates(t *testing.T) {
	as := oauthtest.New(t)
	s := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(s, false, 0))
	defer func() {
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	}()
	const secret = "introspect-SECRET-1"
	t.Setenv("MCPOOL_TEST_INTROSPECT_SECRET", secret)
	var audience atomic.Value
	audience.Store("")
	introspect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, pw, ok := r.BasicAuth(); !ok || id != "mcp-gateway" || pw != secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		active := r.PostFormValue("token") == "opaque-alice"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "sub": "alice", "iss": as.Issuer, "aud": audience.Load(),
			"exp": time.Now().Add(time.Hour).Unix()})
	}))
	defer introspect.Close()
	url, stop, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {"demo": {"type": "http", "url": %q}},
  "gateway": {"auth": {"issuer": %q, "introspectionURL": %q, "clientID": "mcp-gateway", "clientSecret": "${MCPOOL_TEST_INTROSPECT_SECRET}"},
              "servers": {"demo": {"mode": "shared"}}}
}`, ts.URL, as.Issuer, introspect.URL))
	defer stop()
	audience.Store(url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: headerTransport{set: bearer("opaque-alice")}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect with an opaque token: %v\n%s", err, logs.String())
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}}); err != nil {
		t.Errorf("call: %v", err)
	}
	if got := hideSecrets("error: " + secret); strings.Contains(got, secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("the introspection client secret is not hidden: %q\n%s", got, logs.String())
	}
}

// --auth-issuer over plain http off loopback is a usage error naming the
// flag and saying https is required; on loopback it is accepted.
func TestGatewaySecurityRefusesPlainHTTPIssuer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, _, _, err := gatewaySecurity(ctx, nil, "http://auth.example.com", "", "", "", "127.0.0.1:7300", false, false, io.Discard, log)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--auth-issuer") || !strings.Contains(err.Error(), "must be https") {
		t.Errorf("plain-http issuer: %v; want a usage error naming --auth-issuer, saying https is required", err)
	}
	as := oauthtest.New(t)
	rs, _, closeAll, err := gatewaySecurity(ctx, nil, as.Issuer, "", "", "", "127.0.0.1:7300", false, false, io.Discard, log)
	if err != nil || rs == nil {
		t.Fatalf("loopback issuer: %v", err)
	}
	closeAll()
}
