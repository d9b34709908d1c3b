package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestParseFormats(t *testing.T) {
	const claude = `{
	  "mcpServers": {
	    "files": {"command": "node", "args": ["server.js", "--root", "${HOME_DIR:-/tmp}"], "env": {"TOKEN": "${env:FILES_TOKEN}"}, "cwd": "/srv"},
	    "github": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}},
	    "legacy": {"type": "sse", "url": "http://127.0.0.1:9000/sse"},
	    "off": {"command": "nothing", "disabled": true},
	    "remote": {"url": "http://127.0.0.1:8080/mcp", "alwaysAllow": ["x"]}
	  },
	  "mcpool": {
	    "separator": "_",
	    "defaults": {"maxSessions": 8, "acquireTimeout": "2s"},
	    "servers": {
	      "remote": {"replicas": ["http://127.0.0.1:8081/mcp", "http://127.0.0.1:8082/mcp"], "balance": "failover", "minSessions": 2},
	      "files": {"replicas": 3, "maxCallsPerSession": 1}
	    }
	  }
	}`
	cf, err := config.Parse("claude.json", []byte(claude), env(map[string]string{"FILES_TOKEN": "s3cret", "GH_TOKEN": "ghp_x"}))
	if err != nil {
		t.Fatal(err)
	}
	gc := &cf.Group
	var names []string
	for _, s := range gc.Servers {
		names = append(names, s.Name)
	}
	if want := []string{"files", "github", "legacy", "remote"}; !slices.Equal(names, want) {
		t.Fatalf("servers %v, want %v (file order, disabled left out)", names, want)
	}
	if gc.Separator != "_" {
		t.Errorf("separator %q", gc.Separator)
	}
	files := gc.Servers[0]
	if len(files.Replicas) != 3 {
		t.Fatalf("files: %d replicas, want 3", len(files.Replicas))
	}
	c := files.Replicas[2].Command
	if c.Path != "node" || !slices.Equal(c.Args, []string{"server.js", "--root", "/tmp"}) || c.Dir != "/srv" {
		t.Errorf("files command %+v", c)
	}
	if !slices.Contains(c.Env, "TOKEN=s3cret") || len(c.Env) < 2 {
		t.Errorf("files env should be the environment plus TOKEN, got %d entries", len(c.Env))
	}
	if r := files.Replicas[0]; r.MaxCallsPerSession != 1 || r.MaxSessions != 8 || r.AcquireTimeout != 2*time.Second {
		t.Errorf("files settings: %d calls per session, %d sessions, %v acquire timeout", r.MaxCallsPerSession, r.MaxSessions, r.AcquireTimeout)
	}
	gh := gc.Servers[1].Config
	if gh.URL != "https://api.example.com/mcp" || gh.Headers.Get("Authorization") != "Bearer ghp_x" {
		t.Errorf("github: %q %v", gh.URL, gh.Headers)
	}
	if gc.Servers[2].Config.SSEURL != "http://127.0.0.1:9000/sse" {
		t.Errorf("legacy: %+v", gc.Servers[2].Config)
	}
	remote := gc.Servers[3]
	if remote.Balance != mcpool.Failover || len(remote.Replicas) != 2 || remote.Replicas[1].URL != "http://127.0.0.1:8082/mcp" || remote.Replicas[0].MinSessions != 2 {
		t.Errorf("remote: %+v", remote)
	}

	// VS Code's format.
	const vscode = `{
	  "inputs": [{"type": "promptString", "id": "key"}],
	  "servers": {
	    "mem": {"type": "stdio", "command": "${env:NODE_BIN}", "args": ["mem.js"], "envFile": "mem.env"},
	    "web": {"type": "http", "url": "http://127.0.0.1:7000/mcp"}
	  }
	}`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mem.env"), []byte("# comment\nexport A=1\nB=\"two words\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err = config.Parse(filepath.Join(dir, "mcp.json"), []byte(vscode), env(map[string]string{"NODE_BIN": "/usr/bin/node"}))
	if err != nil {
		t.Fatal(err)
	}
	gc = &cf.Group
	mem := gc.Servers[0].Config.Command
	if mem.Path != "/usr/bin/node" || !slices.Contains(mem.Env, "A=1") || !slices.Contains(mem.Env, "B=two words") {
		t.Errorf("mem: %q, env has A and B: %v %v", mem.Path, slices.Contains(mem.Env, "A=1"), slices.Contains(mem.Env, "B=two words"))
	}
	if gc.Servers[1].Config.URL != "http://127.0.0.1:7000/mcp" {
		t.Errorf("web: %+v", gc.Servers[1].Config)
	}
}

// Every bad config fails with one line naming the file, the server and the
// field, and never a secret.
func TestParseErrors(t *testing.T) {
	vars := env(map[string]string{"SECRET": "hunter2-secret", "EMPTY": ""})
	for _, tc := range []struct {
		name, json string
		want       []string // all in the message
	}{
		{"missing var", `{"mcpServers": {"gh": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}}}}`,
			[]string{`server "gh"`, "headers.Authorization", "${GH_TOKEN} is not set"}},
		{"missing var in args", `{"mcpServers": {"fs": {"command": "fs", "args": ["--key", "${NOPE}"]}}}`,
			[]string{`server "fs"`, "args[1]", "${NOPE} is not set"}},
		{"missing env: var", `{"servers": {"fs": {"command": "fs", "env": {"K": "${env:NOPE}"}}}}`,
			[]string{`server "fs"`, "env.K", "${env:NOPE} is not set"}},
		{"input", `{"servers": {"fs": {"command": "fs", "env": {"K": "${input:key}"}}}}`,
			[]string{`server "fs"`, "env.K", "${input:key}", "cannot"}},
		{"unknown type", `{"mcpServers": {"x": {"type": "websocket", "url": "ws://a"}}}`,
			[]string{`server "x"`, "type", `"websocket" is not a server type`}},
		{"neither", `{"mcpServers": {"x": {"args": ["a"]}}}`,
			[]string{`server "x"`, "command", `"url"`}},
		{"both", `{"mcpServers": {"x": {"command": "a", "url": "http://a/mcp"}}}`,
			[]string{`server "x"`, "command", "both"}},
		{"bad url", `{"mcpServers": {"x": {"url": "ftp://${SECRET}@a/mcp"}}}`,
			[]string{`server "x"`, "url", "http://"}},
		{"args not array", `{"mcpServers": {"x": {"command": "a", "args": "--flag"}}}`,
			[]string{`server "x"`, "args", "array of strings"}},
		{"headers on stdio", `{"mcpServers": {"x": {"command": "a", "headers": {"A": "${SECRET}"}}}}`,
			[]string{`server "x"`, "headers", "stdio"}},
		{"unknown setting", `{"mcpServers": {"x": {"command": "a"}}, "mcpool": {"servers": {"x": {"maxSesions": 3}}}}`,
			[]string{`server "x"`, "mcpool.servers.x.maxSesions", "not a known setting"}},
		{"bad duration", `{"mcpServers": {"x": {"command": "a"}}, "mcpool": {"servers": {"x": {"acquireTimeout": 30}}}}`,
			[]string{`server "x"`, "mcpool.servers.x.acquireTimeout", "duration"}},
		{"bad pool setting", `{"mcpServers": {"x": {"command": "a"}}, "mcpool": {"servers": {"x": {"minSessions": 9, "maxSessions": 2}}}}`,
			[]string{`server "x"`, "mcpool.servers.x", "MinSessions (9) exceeds MaxSessions (2)"}},
		{"settings for no server", `{"mcpServers": {"x": {"command": "a"}}, "mcpool": {"servers": {"y": {}}}}`,
			[]string{`server "y"`, "mcpool.servers.y", "not in"}},
		{"stdio replicas", `{"mcpServers": {"x": {"command": "a"}}, "mcpool": {"servers": {"x": {"replicas": ["http://a/mcp"]}}}}`,
			[]string{`server "x"`, "mcpool.servers.x.replicas", "count"}},
		{"replica var", `{"mcpServers": {"x": {"url": "http://a/mcp"}}, "mcpool": {"servers": {"x": {"replicas": ["${R2}"]}}}}`,
			[]string{`server "x"`, "mcpool.servers.x.replicas[0]", "${R2} is not set"}},
		{"bad balance", `{"mcpServers": {"x": {"url": "http://a/mcp"}}, "mcpool": {"servers": {"x": {"balance": "random"}}}}`,
			[]string{`server "x"`, "mcpool.servers.x.balance", "least-loaded"}},
		{"name with separator", `{"mcpServers": {"a__b": {"url": "http://a/mcp"}}}`,
			[]string{`server "a__b"`, "separator"}},
		{"no servers", `{"other": {}}`, []string{`"mcpServers"`}},
		{"syntax", "{\n  \"mcpServers\": {,}\n}", []string{"line 2, column 18"}},
		{"missing colon", "{\n  \"mcpServers\": {\"a\": {\"command\": \"x\"}},\n  \"mcpool\" {}\n}", []string{"line 3, column 12"}},
		{"line ends in a string", "{\n  \"mcpServers\": {\"a\": {\"command\": \"x\n\"}}\n}", []string{"line 2, column 37"}},
		{"byte order mark", "\ufeff{\"mcpServers\": {\"a\": {\"command\": 1}}}", []string{"command: want a string"}},
		{"unterminated", `{"mcpServers": {"x": {"command": "${HOME"}}}`, []string{`server "x"`, "command", `no closing "}"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("conf/mcp.json", []byte(tc.json), vars)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			var fe *config.FileError
			if !errors.As(err, &fe) || !errors.Is(err, mcpool.ErrInvalidConfig) {
				t.Errorf("error %T does not match *FileError and ErrInvalidConfig", err)
			}
			if !strings.HasPrefix(msg, "mcpool: conf/mcp.json: ") || strings.Contains(msg, "\n") || strings.Count(msg, "mcpool:") != 1 {
				t.Errorf("want one line starting with the file: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("message leaks a secret: %q", msg)
			}
		})
	}
}

// Load reads a file from disk; the examples load, gateway section and all.
func TestLoadFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "absent.json"))
	var fe *config.FileError
	if !errors.Is(err, mcpool.ErrInvalidConfig) || !errors.As(err, &fe) || !strings.Contains(err.Error(), "absent.json: cannot read") {
		t.Fatalf("missing file: %v", err)
	}
	for _, path := range []string{"../examples/mcp.json", "../examples/gateway.json"} {
		f, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(f.Group.Servers) < 2 || len(f.Warnings) > 0 {
			t.Fatalf("%s has %d servers and warnings %q, want a stdio and an HTTP one and no warning", path, len(f.Group.Servers), f.Warnings)
		}
	}
	f, err := config.Load("../examples/gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	if g := f.Gateway; g.MaxInFlight != 256 || g.CallTimeout != 2*time.Minute || g.Servers["demo"].Mode != config.ModeShared || g.Servers["demo"].MaxQueued != 64 {
		t.Errorf("examples/gateway.json's gateway section: %+v", g)
	}
}

// LoadServer loads one server of a file: a variable only another server
// uses need not be set, and a name the file lacks is an error listing the
// servers it has.
func TestLoadServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcp.json")
	const file = `{"mcpServers": {
	  "gh": {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${MCPOOL_TEST_UNSET_GH}"}},
	  "fs": {"command": "mcp-server-filesystem", "args": ["."]}
	},
	"mcpool": {"servers": {"gh": {"maxSessions": 2}}},
	"gateway": {"servers": {"gh": {"mode": "passthrough", "forwardHeaders": ["X-Key"]}}}}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "MCPOOL_TEST_UNSET_GH") {
		t.Fatalf("Load: %v; want the unset variable named", err)
	}
	f, err := config.LoadServer(path, "fs")
	if err != nil {
		t.Fatalf("LoadServer fs: %v", err)
	}
	if len(f.Group.Servers) != 1 || f.Group.Servers[0].Name != "fs" {
		t.Errorf("LoadServer fs loaded %+v; want fs alone", f.Group.Servers)
	}
	_, err = config.LoadServer(path, "nope")
	var fe *config.FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `has no server "nope" (servers: gh, fs)`) {
		t.Errorf("LoadServer nope: %v; want the servers listed", err)
	}
}

// VS Code's mcp.json is JSON with Comments: comments and trailing commas
// are allowed, and errors still point at the right line.
func TestParseJSONC(t *testing.T) {
	const file = `{
	  // servers for this workspace
	  "servers": {
	    /* the docs server */
	    "docs": {"url": "http://127.0.0.1:9/mcp?a=//not-a-comment", "headers": {"X": "a,}"},},
	    "fs": {"command": "fs", "args": ["/*", "//"],},
	  },
	}`
	cf, err := config.Parse("mcp.json", []byte(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	gc := &cf.Group
	if u := gc.Servers[0].Config.URL; u != "http://127.0.0.1:9/mcp?a=//not-a-comment" {
		t.Errorf("url %q", u)
	}
	if h := gc.Servers[0].Config.Headers.Get("X"); h != "a,}" {
		t.Errorf("header %q", h)
	}
	if a := gc.Servers[1].Config.Command.Args; !slices.Equal(a, []string{"/*", "//"}) {
		t.Errorf("args %q", a)
	}
	_, err = config.Parse("mcp.json", []byte("{\n  // note\n  \"servers\": {\n    \"x\": {\"command\": \"a\" \"b\"}\n  }\n}"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("syntax error after a comment: %v", err)
	}
}
