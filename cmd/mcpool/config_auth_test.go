package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Config-file servers take the command's credentials per server, in
// mcpool.servers.NAME.auth: a token (from the environment), the
// client-credentials grant, or the authorization-code flow.

// A ${VAR} token reaches a go-sdk server behind auth.RequireBearerToken,
// through the command and through the gateway; a wrong one is "refused",
// and its value appears nowhere.
func TestConfigAuthToken(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	path := writeConfig(t, fmt.Sprintf(`{
  "mcpServers": {"secure": {"url": %q, "headers": {"X-Tenant": "acme"}}},
  "mcpool": {"servers": {"secure": {"auth": {"token": "${MCPOOL_TEST_CONFIG_TOKEN}"}}}}
}`, ps.url))
	t.Setenv("MCPOOL_TEST_CONFIG_TOKEN", "s3cret")
	r := runCLI(t, "call", "--config", path, "secure__echo", `{"message":"hi"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"hi"`) {
		t.Fatalf("call --config with an auth token: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := ps.seenTenants(); len(got) == 0 || got[0] != "acme" {
		t.Errorf("X-Tenant seen by the server: %q, want acme beside the token", got)
	}

	// The gateway's upstream carries it too.
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	url, _, logs := startGateway(t, strings.Replace(string(body), `"mcpool"`, `"gateway": {"servers": {"secure": {"mode": "shared"}}}, "mcpool"`, 1))
	r = runCLI(t, "call", "--url", url, "secure__echo", `{"message":"via gateway"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "via gateway") {
		t.Errorf("call through the gateway: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	t.Setenv("MCPOOL_TEST_CONFIG_TOKEN", "wr0ng-t0ken")
	r = runCLI(t, "call", "--config", path, "secure__echo", `{"message":"hi"}`)
	if r.code == 0 || !strings.Contains(r.stderr, "refused") || strings.Count(r.stderr, "mcpool:") != 1 {
		t.Errorf("wrong token: status %d, stderr %q; want one line saying the server refused it", r.code, r.stderr)
	}
	for _, out := range []string{r.stdout, r.stderr, logs.String()} {
		if strings.Contains(out, "wr0ng-t0ken") || strings.Contains(out, "s3cret") {
			t.Errorf("a token appears in the output: %q", out)
		}
	}
}

// Bad auth objects fail with one line naming the file, the server and the
// field, never the secret.
func TestConfigAuthErrors(t *testing.T) {
	const url = "http://127.0.0.1:1/mcp"
	for _, tc := range []struct{ servers, mention string }{
		{`"defaults": {"auth": {"token": "x"}}, "servers": {}`, `mcpool.defaults.auth: belongs to one server`},
		{`"servers": {"s": {"auth": {"token": "${MCPOOL_TEST_UNSET_TOKEN}"}}}`, `server "s": mcpool.servers.s.auth.token: ${MCPOOL_TEST_UNSET_TOKEN} is not set`},
		{`"servers": {"s": {"auth": {"token": "sekrit-1", "oauth": true}}}`, `server "s": mcpool.servers.s.auth: has "token" and OAuth`},
		{`"servers": {"s": {"auth": {"clientId": "bot"}}}`, `needs "clientSecret" too`},
		{`"servers": {"s": {"auth": {"clientSecret": "sekrit-1"}}}`, `has "clientSecret" without "clientId"`},
		{`"servers": {"s": {"auth": {"clientMetadataUrl": "https://a/c.json"}}}`, `without "oauth": true`},
		{`"servers": {"s": {"auth": {"scope": "x"}}}`, `mcpool.servers.s.auth.scope`},
		{`"servers": {"p": {"auth": {"token": "sekrit-1"}}}`, `server "p": mcpool.servers.p.auth: applies to HTTP servers`},
	} {
		path := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"s": {"url": %q}, "p": {"command": "x"}}, "mcpool": {%s}}`, url, tc.servers))
		r := runCLI(t, "tools", "--config", path)
		wantOneLineError(t, r, exitUsage, tc.mention)
		if strings.Contains(r.stderr, "sekrit") {
			t.Errorf("the error shows a secret: %q", r.stderr)
		}
	}
}

// configClientEnv makes this test binary the suite's client through a
// config file: it writes one with the scenario's credentials in the
// server's "auth" and runs "mcpool call --config".
const configClientEnv = "MCPOOL_CONFORMANCE_CONFIG_CLIENT"

func init() {
	if os.Getenv(configClientEnv) == "1" && len(os.Args) == 2 {
		os.Exit(configClient(os.Args[1]))
	}
}

func configClient(url string) int {
	var sctx map[string]string
	_ = json.Unmarshal([]byte(os.Getenv("MCP_CONFORMANCE_CONTEXT")), &sctx)
	auth := `{"oauth": true}`
	if sctx["client_secret"] != "" {
		// The secret comes from the environment, as a user would keep it.
		os.Setenv("MCPOOL_TEST_CLIENT_SECRET", sctx["client_secret"])
		auth = fmt.Sprintf(`{"clientId": %q, "clientSecret": "${MCPOOL_TEST_CLIENT_SECRET}"}`, sctx["client_id"])
	}
	dir, err := os.MkdirTemp("", "mcpool-config-client")
	if err != nil {
		return 3
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "mcp.json")
	body := fmt.Sprintf(`{"mcpServers": {"remote": {"url": %q}}, "mcpool": {"servers": {"remote": {"auth": %s}}}}`, url, auth)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return 3
	}
	// The person at the browser, as in conformance_test.go.
	pr, pw := io.Pipe()
	browsed := make(chan struct{})
	go func() {
		defer close(browsed)
		sc := bufio.NewScanner(pr)
		asked := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(os.Stderr, line)
			switch {
			case strings.Contains(line, "open this URL in a browser"):
				asked = true
			case asked && strings.HasPrefix(line, "http"):
				asked = false
				browse(line)
			}
		}
	}()
	code := run([]string{"call", "--config", path, "--timeout", "25s", "remote__test-tool", "{}"}, os.Stdout, pw)
	pw.Close()
	<-browsed
	return code
}

// TestConfigAuthOAuth: against the conformance suite's authorization
// servers, a config file's "auth" runs the client-credentials grant
// (clientId, clientSecret from ${VAR}) and the authorization-code flow
// ("oauth": true, a person at the browser), and the call is made.
func TestConfigAuthOAuth(t *testing.T) {
	node, suite := suitePaths(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{"auth/client-credentials-basic", "auth/metadata-default"} {
		t.Run(sc, func(t *testing.T) {
			ok, report, outDir := runScenario(t, node, suite, exe, sc, configClientEnv+"=1", conformanceEnv+"=0")
			if !ok {
				t.Fatalf("the scenario failed with the credentials in a config file:\n%s", report)
			}
			if stdout := readScenarioFile(outDir, "stdout.txt"); !strings.Contains(stdout, `"text": "test"`) {
				t.Errorf("stdout %q lacks the tool's result", stdout)
			}
			// A person signs in for the authorization-code flow only.
			asked := strings.Contains(readScenarioFile(outDir, "stderr.txt"), "open this URL in a browser")
			if want := sc == "auth/metadata-default"; asked != want {
				t.Errorf("asked a person to sign in: %v, want %v", asked, want)
			}
		})
	}
}
