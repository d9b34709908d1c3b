package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/internal/demoserver"
)

// everythingNpx puts an npx on PATH that runs the pinned server-everything
// installed in testdata (what "npx -y PACKAGE stdio" does once the package
// is cached), so that examples/mcp.json runs as written, offline.
func everythingNpx(t *testing.T) {
	t.Helper()
	js, err := filepath.Abs("../../testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("server-everything is not installed (%v): run scripts/test, which runs npm ci --prefix testdata/npm", err)
	}
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\n[ \"$2\" = \"@modelcontextprotocol/server-everything@2026.8.31\" ] || { echo \"unexpected package $2\" >&2; exit 1; }\nexec node %q \"$3\"\n", js)
	if err := os.WriteFile(filepath.Join(dir, "npx"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// demoHTTP serves the demo server on loopback and returns its URL.
func demoHTTP(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// examples/mcp.json mixes server-everything on stdio and the demo server
// on HTTP: tools lists both under namespaced names, and call reaches both.
func TestConfigExample(t *testing.T) {
	everythingNpx(t)
	t.Setenv("MCPOOL_DEMO_URL", demoHTTP(t))
	const example = "../../examples/mcp.json"

	names := toolNames(t, runCLI(t, "tools", "--config", example))
	for _, want := range []string{"everything__echo", "everything__get-sum", "demo__echo", "demo__sleep", "demo__structured"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools lack %s: %v", want, names)
		}
	}
	for _, c := range []struct{ tool, want string }{{"everything__echo", "Echo: via stdio"}, {"demo__echo", "via stdio"}} {
		r := runCLI(t, "call", "--config", example, c.tool, `{"message":"via stdio"}`)
		if r.code != 0 || !strings.Contains(r.stdout, c.want) {
			t.Errorf("call %s: status %d, stdout %q, stderr %q", c.tool, r.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, "call", "--config", example, "everything__get-sum", `{"a":20,"b":22}`)
	if r.code != 0 || !strings.Contains(r.stdout, "42") {
		t.Errorf("get-sum: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// --server: one server, plain names.
	if got := toolNames(t, runCLI(t, "tools", "--config", example, "--server", "demo")); !slices.Equal(got, demoTools) {
		t.Errorf("tools --server demo: %v", got)
	}
	r = runCLI(t, "call", "--config", example, "--server", "demo", "echo", `{"message":"plain"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "plain") {
		t.Errorf("call --server demo echo: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// servers: one row per server.
	r = runCLI(t, "servers", "--config", example)
	if r.code != 0 {
		t.Fatalf("servers: status %d, stderr %q", r.code, r.stderr)
	}
	for _, row := range []string{`(?m)^everything\s+healthy\s+1\s+1[0-9]\s+stdio:npx`, `(?m)^demo\s+healthy\s+1\s+3\s+http://127\.0\.0\.1:\d+/mcp`} {
		if !regexp.MustCompile(row).MatchString(r.stdout) {
			t.Errorf("servers output lacks a row like %s:\n%s", row, r.stdout)
		}
	}
	wantNoChildren(t)
}

// A server that is down is reported and left out; the others are listed.
func TestConfigServerDown(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}, "down": {"url": "http://127.0.0.1:1/mcp"}},
		"mcpool": {"servers": {"down": {"failureThreshold": 1}}}}`, demoHTTP(t)))
	r := runCLI(t, "tools", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "demo__echo") || !strings.Contains(r.stderr, "down") {
		t.Errorf("tools with a server down: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "servers", "--config", cfg, "--json")
	var out struct {
		Servers []struct {
			Name, Status, Error string
			Tools               int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Servers) != 2 {
		t.Fatalf("servers --json: %v\n%s", err, r.stdout)
	}
	if s := out.Servers[1]; s.Name != "down" || s.Error == "" || s.Tools != -1 || out.Servers[0].Tools != 3 {
		t.Errorf("servers --json: %+v", out.Servers)
	}
	if r.code != 1 {
		t.Errorf("servers with one down: status %d, want 1", r.code)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Bad configs fail with one line naming the file, the server and the field.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, mention string }{
		{`{"mcpServers": {"gh": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer ${MCPOOL_TEST_UNSET_TOKEN}"}}}}`,
			`server "gh": headers.Authorization: ${MCPOOL_TEST_UNSET_TOKEN} is not set`},
		{`{"mcpServers": {"x": {"type": "websocket", "url": "ws://a"}}}`, `server "x": type: "websocket" is not a server type`},
		{`{"mcpServers": {"x": {"args": ["a"]}}}`, `server "x": command: is missing, and so is "url"`},
	} {
		path := writeConfig(t, tc.body)
		for _, cmd := range [][]string{{"tools"}, {"call", "x__echo"}, {"bench"}, {"servers"}} {
			r := runCLI(t, append(cmd, "--config", path)...)
			wantOneLineError(t, r, exitUsage, path+": "+tc.mention)
		}
	}
	wantOneLineError(t, runCLI(t, "tools", "--server", "a"), exitUsage, "--server needs --config")
	wantOneLineError(t, runCLI(t, "tools", "--config", "x.json", "--url", "http://127.0.0.1:1/mcp"), exitUsage, "not both")
	wantOneLineError(t, runCLI(t, "servers"), exitUsage, "--config FILE is required")
}

// bench --config balances a pooled run over two replicas of one server.
func TestConfigBenchReplicas(t *testing.T) {
	a, b := demoHTTP(t), demoHTTP(t)
	cfg := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}},
		"mcpool": {"servers": {"demo": {"replicas": [%q, %q], "minSessions": 1}}}}`, a, a, b))
	r := runCLI(t, "bench", "--config", cfg, "--tool", "demo__sleep", "--args", `{"ms":2}`, "--calls", "400", "--concurrency", "16")
	if r.code != 0 {
		t.Fatalf("bench: status %d, stderr %q", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^pooled\s+400\s+0\s`).MatchString(r.stdout) {
		t.Errorf("bench output:\n%s", r.stdout)
	}
	for _, u := range []string{a, b} {
		if !regexp.MustCompile(regexp.QuoteMeta(u) + `: [1-9]\d* calls`).MatchString(r.stdout) {
			t.Errorf("replica %s served no calls:\n%s", u, r.stdout)
		}
	}
	r = runCLI(t, "bench", "--config", cfg, "--server", "demo", "--tool", "echo", "--calls", "50", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"mode":"pooled"`) {
		t.Errorf("bench --server --json: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
