package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
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
	for _, row := range []string{`(?m)^everything\s+healthy\s+connected [01]\.\d\d\s+1\s+1[0-9]\s+stdio:npx`, `(?m)^demo\s+healthy\s+connected [01]\.\d\d\s+1\s+3\s+http://127\.0\.0\.1:\d+/mcp`} {
		if !regexp.MustCompile(row).MatchString(r.stdout) {
			t.Errorf("servers output lacks a row like %s:\n%s", row, r.stdout)
		}
	}
	wantNoChildren(t)
}

// A server that is down is reported and left out; the others are listed.
func TestConfigServerDown(t *testing.T) {
	t.Parallel() // waits on a server that is down, idle: alongside the others that do
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
	if s := out.Servers[1]; s.Name != "down" || s.Error == "" || strings.Contains(s.Error, "next try") || s.Tools != -1 || out.Servers[0].Tools != 3 {
		t.Errorf("servers --json: %+v (the command makes no next try)", out.Servers)
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
	// An empty target (an unset variable) is a mistake, not the embedded demo server.
	wantOneLineError(t, runCLI(t, "call", "--url", "", "echo", `{"message":"x"}`), exitUsage, `invalid value "" for flag -url: empty`)
	wantOneLineError(t, runCLI(t, "tools", "--config", ""), exitUsage, `invalid value "" for flag -config: empty`)
	wantOneLineError(t, runCLI(t, "tools", "--stdio", " "), exitUsage, `invalid value " " for flag -stdio: empty`)
	// Credential flags would go to every server of the file: refused.
	wantOneLineError(t, runCLI(t, "tools", "--config", "x.json", "--token", "t0k"), exitUsage, "--token: credential flags apply to --url and --sse")
	wantOneLineError(t, runCLI(t, "call", "--config", "x.json", "--header", "X-Key: k", "--oauth", "x__echo"), exitUsage, "--header, --oauth: credential flags")
}

// --server loads that server alone: a variable only another server of the
// file uses need not be set (most users' files have servers they are not
// using today); an unknown name lists the file's servers.
func TestConfigServerIgnoresOthers(t *testing.T) {
	path := writeConfig(t, fmt.Sprintf(`{"mcpServers": {
	  "gh": {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${MCPOOL_TEST_UNSET_GH}"}},
	  "demo": {"url": %q}
	}}`, demoHTTP(t)))
	if got := toolNames(t, runCLI(t, "tools", "--config", path, "--server", "demo")); !slices.Equal(got, demoTools) {
		t.Errorf("tools --server demo: %v", got)
	}
	wantOneLineError(t, runCLI(t, "tools", "--config", path, "--server", "nope"), exitUsage, `has no server "nope" (servers: gh, demo)`)
	wantOneLineError(t, runCLI(t, "tools", "--config", path), exitUsage, "MCPOOL_TEST_UNSET_GH")
}

// A config file's server that needs credentials, given none, says where
// to give them: in the file, not by flags.
func TestConfigUnauthorizedSaysWhere(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	path := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"secure": {"url": %q}}}`, ps.url))
	t.Setenv("MCPOOL_TOKEN", "") // the flags' fallback does not apply to a file's servers
	wantOneLineError(t, runCLI(t, "call", "--config", path, "secure__echo", `{"message":"hi"}`), exitFailure,
		`give it credentials in the config file: "headers" (a token) or "auth" (OAuth)`)
}

// The command answers elicitation for a config file's servers as it does
// for --url: here with the schema's defaults (--no-input).
func TestConfigAnswersElicitation(t *testing.T) {
	path := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"asker": {"url": %q}}}`, askingServer(t)))
	got := toolText(t, runCLI(t, "call", "--config", path, "--no-input", "asker__ask", nameSchema))
	if content, _ := got["content"].(map[string]any); got["action"] != "accept" || content["name"] != "Ada" {
		t.Errorf("elicitation through --config: got %v, want accept {name: Ada}", got)
	}
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

// httpEnv makes the test binary act as "mcpool demo-server --http ADDR",
// so that a test can SIGKILL a real server process.
const httpEnv = "MCPOOL_CLI_TEST_HTTP"

// demoProcess starts the demo server over HTTP in a child process and
// returns its URL and a kill (SIGKILL, then reap) that also runs when the
// test ends.
func demoProcess(t *testing.T) (url string, kill func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), httpEnv+"=127.0.0.1:0", "GORACE=atexit_sleep_ms=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "serving MCP on "); ok {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return u, kill
		}
	}
	t.Fatalf("the demo server process did not start: %v", sc.Err())
	return "", nil
}

// progressTrigger is bench's stderr: it runs fire once, when the first
// progress line of the pooled mode shows calls done.
type progressTrigger struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
	fire func()
}

var progressLine = regexp.MustCompile(`pooled: ([1-9]\d*)/\d+ calls`)

func (p *progressTrigger) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if progressLine.Match(b) {
		p.once.Do(p.fire)
	}
	return p.buf.Write(b)
}

// With two demo-server processes behind one server entry and 16 callers,
// SIGKILLing one during a pooled bench of a read-only tool costs no call.
// The bench needs at least 4000×10ms/16 = 2.5s, and its first progress
// line comes at 1.5s, when at most 16×1.5s/10ms = 2400 calls are done: the
// kill falls mid-bench whatever the machine's speed.
func TestConfigBenchReplicaKilled(t *testing.T) {
	a, _ := demoProcess(t)
	b, killB := demoProcess(t)
	cfg := writeConfig(t, fmt.Sprintf(`{"mcpServers": {"demo": {"url": %q}},
		"mcpool": {"servers": {"demo": {"replicas": [%q, %q], "minSessions": 2, "failureThreshold": 2, "breakerCooldown": "1m"}}}}`, a, a, b))
	killed := make(chan struct{})
	stderr := &progressTrigger{fire: func() { killB(); close(killed) }}
	var stdout bytes.Buffer
	code := run([]string{"bench", "--config", cfg, "--tool", "demo__sleep", "--args", `{"ms":10}`,
		"--calls", "4000", "--concurrency", "16"}, &stdout, stderr)
	select {
	case <-killed:
	default:
		t.Fatalf("the replica was not killed during the bench (no progress line); stderr %q", stderr.buf.String())
	}
	if code != 0 {
		t.Fatalf("bench failed (status %d):\n%s\n%s", code, stdout.String(), stderr.buf.String())
	}
	out := stdout.String()
	if !regexp.MustCompile(`(?m)^pooled\s+4000\s+0\s`).MatchString(out) {
		t.Errorf("want 4000 calls and 0 errors:\n%s", out)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(b) + `: (\d+) calls, (\d+) moved`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("the killed replica should have served calls, and moved those in flight at the kill:\n%s", out)
	}
	t.Logf("\n%s", out)
}

// A VS Code-style file (comments, trailing commas, ${VAR:-default}, a
// gateway section, a setting of ours in the wrong place) loads alike in
// every command: tools, call, servers and bench --config, and gateway
// --config, which serves the same names; each prints the warning once.
func TestConfigJSONCEveryCommand(t *testing.T) {
	u, err := neturl.Parse(demoHTTP(t))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{
  // .vscode/mcp.json
  "inputs": [],
  "servers": {
    /* the demo server, on loopback */
    "demo": {
      "type": "http",
      "url": "http://${MCPOOL_TEST_UNSET_HOST:-127.0.0.1}:%s/mcp",
      "minSessions": 1, // ours, in the wrong place
    },
  },
  "mcpool": {"defaults": {"connectTimeout": "${MCPOOL_TEST_UNSET_CONNECT:-10s}",},},
  "gateway": {
    "callTimeout": "${MCPOOL_TEST_UNSET_TIMEOUT:-30s}",
    "servers": {"demo": {"mode": "${MCPOOL_TEST_UNSET_MODE:-shared}",},},
  },
}`, u.Port())
	path := writeConfig(t, body)
	const warning = `mcpool: warning: ` + `%s: server "demo": "minSessions" belongs in mcpool.servers.demo, not in servers.demo: it is ignored there`
	wantWarning := func(cmd, stderr string) {
		t.Helper()
		if w := fmt.Sprintf(warning, path); strings.Count(stderr, w) != 1 {
			t.Errorf("%s: stderr %q, want the warning %q once", cmd, stderr, w)
		}
	}

	r := runCLI(t, "tools", "--config", path)
	names := toolNames(t, r)
	if want := []string{"demo__echo", "demo__sleep", "demo__structured"}; !slices.Equal(names, want) {
		t.Errorf("tools --config: %v, want %v", names, want)
	}
	wantWarning("tools", r.stderr)
	r = runCLI(t, "call", "--config", path, "demo__echo", `{"message":"jsonc"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "jsonc") {
		t.Errorf("call --config: %d %q %q", r.code, r.stdout, r.stderr)
	}
	wantWarning("call", r.stderr)
	r = runCLI(t, "servers", "--config", path)
	if r.code != 0 || !strings.Contains(r.stdout, "demo") {
		t.Errorf("servers --config: %d %q %q", r.code, r.stdout, r.stderr)
	}
	wantWarning("servers", r.stderr)
	r = runCLI(t, "bench", "--config", path, "--tool", "demo__echo", "--calls", "20", "--concurrency", "2")
	if r.code != 0 {
		t.Errorf("bench --config: %d %q %q", r.code, r.stdout, r.stderr)
	}
	wantWarning("bench", r.stderr)

	url, stop, logs := startGateway(t, body)
	viaGateway := toolNames(t, runCLI(t, "tools", "--url", url))
	if !slices.Equal(viaGateway, names) {
		t.Errorf("gateway --config serves %v, tools --config lists %v", viaGateway, names)
	}
	r = runCLI(t, "call", "--url", url, "demo__echo", `{"message":"via gateway"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "via gateway") {
		t.Errorf("call through the gateway: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d: %s", code, logs.String())
	}
	if n := strings.Count(logs.String(), `belongs in mcpool.servers.demo, not in servers.demo`); n != 1 {
		t.Errorf("the gateway logged the warning %d times, want once: %s", n, logs.String())
	}
	if strings.Contains(logs.String(), "isolated mode (the default)") {
		t.Errorf("the gateway section's mode was not applied: %s", logs.String())
	}
}

// A file whose sections disagree is refused by every command before
// anything starts, in one line naming the file, the server and the field.
func TestConfigCrossSectionRefused(t *testing.T) {
	const url = "http://127.0.0.1:1/mcp"
	for _, tc := range []struct{ body, mention string }{
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}, "b": {"url": %q}}, "gateway": {"unprefixed": true}}`, url, url),
			`gateway.unprefixed: needs exactly one server, not 2`},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"servers": {"a": {"mode": "passthrough"}}},
		  "mcpool": {"servers": {"a": {"auth": {"token": "sekrit"}}}}}`, url),
			`server "a": mcpool.servers.a.auth: a passthrough server uses each client's own credentials`},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"servers": {"b": {"mode": "shared"}}}}`, url),
			`server "b": gateway.servers.b: has settings but is not in "mcpServers" or "servers"`},
		{`{"mcpServers": {"p": {"command": "srv"}}, "gateway": {"servers": {"p": {"mode": "passthrough"}}}}`,
			`server "p": gateway.servers.p.mode: passthrough forwards the client's HTTP headers, so it needs an HTTP server`},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"servers": {"a": {"mode": "sharde"}}}}`, url),
			`server "a": gateway.servers.a.mode: "sharde" is not a mode`},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"redis": "${MCPOOL_TEST_UNSET_REDIS}"}}`, url),
			`gateway.redis: ${MCPOOL_TEST_UNSET_REDIS} is not set`},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"servers": {"a": {"maxSessions": 2}}}}`, url),
			`server "a": gateway.servers.a.maxSessions: belongs in mcpool.servers.a, not in gateway.servers.a`},
	} {
		path := writeConfig(t, tc.body)
		for _, cmd := range [][]string{{"gateway", "--listen", "127.0.0.1:0"}, {"tools"}} {
			r := runCLI(t, append(cmd, "--config", path)...)
			wantOneLineError(t, r, exitUsage, path+": "+tc.mention)
			if strings.Contains(r.stderr, "sekrit") {
				t.Errorf("the error shows a secret: %q", r.stderr)
			}
		}
	}
}
