package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
)

// The gateway section is read like the rest of the file: JSONC, variables
// in every string, durations, per-server settings for enabled servers.
func TestParseGatewaySection(t *testing.T) {
	const file = `{
	  "servers": {
	    "a": {"url": "http://127.0.0.1:1/mcp"},
	    "b": {"url": "http://127.0.0.1:2/mcp"},
	    "off": {"url": "http://127.0.0.1:3/mcp", "disabled": true},
	  },
	  // the gateway's settings
	  "gateway": {
	    "maxInFlight": 32, "maxIsolatedSessions": 8,
	    "redis": "redis://${REDIS_HOST:-127.0.0.1}:6379/0",
	    "stateless": true, "advertiseURL": "http://${HOST:-10.0.0.5}:7300/mcp",
	    "queueWait": "${QUEUE_WAIT:-250ms}", "callTimeout": "${CALL_TIMEOUT}",
	    "servers": {
	      "a": {"mode": "${A_MODE:-shared}", "maxQueued": -1},
	      "b": {"mode": "passthrough", "forwardHeaders": ["X-Key", "${HEADER}"], "spares": 0},
	      "off": {"mode": "${UNSET}"},   /* disabled: not read */
	    },
	  },
	}`
	f, err := config.Parse("mcp.json", []byte(file), env(map[string]string{"CALL_TIMEOUT": "2m", "HEADER": "X-Tenant", "A_MODE": ""}))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Gateway
	if g.MaxInFlight != 32 || g.MaxIsolatedSessions != 8 || !g.Stateless || g.Unprefixed || g.Redis != "redis://127.0.0.1:6379/0" ||
		g.AdvertiseURL != "http://10.0.0.5:7300/mcp" ||
		g.QueueWait != 250*time.Millisecond || g.CallTimeout != 2*time.Minute {
		t.Errorf("gateway %+v", g)
	}
	if a := g.Servers["a"]; a.Mode != config.ModeShared || a.MaxQueued != -1 {
		t.Errorf("a: %+v", a)
	}
	if b := g.Servers["b"]; b.Mode != config.ModePassthrough || !slices.Equal(b.ForwardHeaders, []string{"X-Key", "X-Tenant"}) {
		t.Errorf("b: %+v", b)
	}
	if _, ok := g.Servers["off"]; ok || len(g.Servers) != 2 || len(f.Group.Servers) != 2 {
		t.Errorf("the disabled server is in: %+v", g.Servers)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings %q", f.Warnings)
	}

	// null is as if unset.
	if _, err := config.Parse("mcp.json", []byte(`{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}, "mcpool": {"defaults": null, "servers": null}, "gateway": {"servers": null, "queueWait": null}}`), env(nil)); err != nil {
		t.Errorf("nulls: %v", err)
	}
	f, err = config.Parse("mcp.json", []byte(`{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}, "gateway": {"unprefixed": true, "maxIsolatedSessions": 8, "servers": {"a": {"spares": -1}}}}`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Gateway.Unprefixed || f.Gateway.MaxIsolatedSessions != 8 || f.Gateway.Servers["a"].Spares != -1 {
		t.Errorf("gateway %+v: want unprefixed, maxIsolatedSessions 8 and spares -1 (none)", f.Gateway)
	}
	// "spares": 0 is none, as a user means it; absent is the default.
	for file, want := range map[string]int{`{"spares": 0}`: -1, `{"spares": 3}`: 3, `{}`: 0} {
		f, err := config.Parse("mcp.json", []byte(`{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}, "gateway": {"servers": {"a": `+file+`}}}`), env(nil))
		if err != nil || f.Gateway.Servers["a"].Spares != want {
			t.Errorf("%s: Spares %d (%v); want %d", file, f.Gateway.Servers["a"].Spares, err, want)
		}
	}
}

// A file whose sections disagree, or whose gateway section is wrong, is
// refused with a FileError naming the file, the server and the field.
func TestParseCrossSectionErrors(t *testing.T) {
	const two = `"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}, "p": {"command": "srv", "args": ["${SECRET}"]}}`
	for _, tc := range []struct {
		name, body          string
		server, field, says string
	}{
		{"gateway server not in the file", `{` + two + `, "gateway": {"servers": {"x": {"mode": "shared"}}}}`,
			"x", "gateway.servers.x", `is not in "mcpServers" or "servers"`},
		{"mcpool server not in the file", `{` + two + `, "mcpool": {"servers": {"y": {}}}}`,
			"y", "mcpool.servers.y", `is not in "mcpServers" or "servers"`},
		{"unprefixed with two servers", `{` + two + `, "gateway": {"unprefixed": true}}`,
			"", "gateway.unprefixed", "needs exactly one server, not 2"},
		{"auth on a passthrough server", `{` + two + `, "gateway": {"servers": {"a": {"mode": "passthrough"}}}, "mcpool": {"servers": {"a": {"auth": {"token": "${SECRET}"}}}}}`,
			"a", "mcpool.servers.a.auth", "a passthrough server uses each client's own credentials"},
		{"passthrough on a stdio server", `{` + two + `, "gateway": {"servers": {"p": {"mode": "passthrough"}}}}`,
			"p", "gateway.servers.p.mode", "needs an HTTP server"},
		{"unknown mode", `{` + two + `, "gateway": {"servers": {"a": {"mode": "sharde"}}}}`,
			"a", "gateway.servers.a.mode", `"sharde" is not a mode`},
		{"pool setting in gateway.servers", `{` + two + `, "gateway": {"servers": {"a": {"maxSessions": 4}}}}`,
			"a", "gateway.servers.a.maxSessions", "belongs in mcpool.servers.a, not in gateway.servers.a"},
		{"gateway setting in mcpool.servers", `{` + two + `, "mcpool": {"servers": {"a": {"mode": "shared"}}}}`,
			"a", "mcpool.servers.a.mode", "belongs in gateway.servers.a, not in mcpool.servers.a"},
		{"entry key in mcpool.servers", `{` + two + `, "mcpool": {"servers": {"a": {"url": "http://127.0.0.1:2/mcp"}}}}`,
			"a", "mcpool.servers.a.url", "belongs in mcpServers.a"},
		{"gateway key in mcpool", `{` + two + `, "mcpool": {"maxInFlight": 3}}`,
			"", "mcpool.maxInFlight", "belongs in gateway, not in mcpool"},
		{"misspelt pool key in gateway.servers", `{` + two + `, "gateway": {"servers": {"a": {"maxSesions": 4}}}}`,
			"a", "gateway.servers.a.maxSesions", `did you mean "maxSessions"? It belongs in mcpool.servers.a`},
		{"misspelt gateway key", `{` + two + `, "gateway": {"maxInFligth": 3}}`,
			"", "gateway.maxInFligth", `did you mean "maxInFlight"?`},
		{"misspelt advertiseURL", `{` + two + `, "gateway": {"advertiseUrl": "http://10.0.0.5:7300/mcp"}}`,
			"", "gateway.advertiseUrl", `did you mean "advertiseURL"?`},
		{"advertiseURL not a URL", `{` + two + `, "gateway": {"advertiseURL": "10.0.0.5:7300"}}`,
			"", "gateway.advertiseURL", "must be this replica's MCP endpoint"},
		{"unset variable in gateway", `{` + two + `, "gateway": {"redis": "redis://:${REDIS_PASSWORD}@127.0.0.1:6379"}}`,
			"", "gateway.redis", "${REDIS_PASSWORD} is not set"},
		{"unset variable in a gateway server", `{` + two + `, "gateway": {"servers": {"a": {"forwardHeaders": ["X", "${H}"]}}}}`,
			"a", "gateway.servers.a.forwardHeaders[1]", "${H} is not set"},
		{"negative maxInFlight", `{` + two + `, "gateway": {"maxInFlight": -1}}`,
			"", "gateway.maxInFlight", "is negative"},
		{"negative maxIsolatedSessions", `{` + two + `, "gateway": {"maxIsolatedSessions": -1}}`,
			"", "gateway.maxIsolatedSessions", "is negative"},
		{"bad duration", `{` + two + `, "gateway": {"queueWait": "${QW:-ten seconds}"}}`,
			"", "gateway.queueWait", `"ten seconds" is not a duration`},
		{"wrong type", `{` + two + `, "gateway": {"servers": {"a": {"spares": "2"}}}}`,
			"a", "gateway.servers.a.spares", "want a whole number, got a JSON string"},
		{"name collision", `{"mcpServers": {"a b": {"url": "http://127.0.0.1:1/mcp"}, "a_b": {"url": "http://127.0.0.1:2/mcp"}}}`,
			"a_b", "", `becomes "a_b" in tool and prompt names, as server "a b" does`},
		{"bad separator", `{` + two + `, "mcpool": {"separator": "/"}}`,
			"", "mcpool.separator", "may hold only"},
		{"bad replica url", `{` + two + `, "mcpool": {"servers": {"a": {"replicas": ["http://127.0.0.1:1/mcp", "ftp://${SECRET}@h/mcp"]}}}}`,
			"a", "mcpool.servers.a.replicas[1]", "must start with http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("conf/mcp.json", []byte(tc.body), env(map[string]string{"SECRET": "hunter2-secret"}))
			var fe *config.FileError
			if !errors.As(err, &fe) || !errors.Is(err, mcpool.ErrInvalidConfig) {
				t.Fatalf("error %v (%T), want a *FileError matching ErrInvalidConfig", err, err)
			}
			if fe.File != "conf/mcp.json" || fe.Server != tc.server || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.says) {
				t.Errorf("got file %q, server %q, field %q, reason %q; want server %q, field %q, a reason saying %q",
					fe.File, fe.Server, fe.Field, fe.Reason, tc.server, tc.field, tc.says)
			}
			if msg := err.Error(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line without the secret", msg)
			}
		})
	}
}

// A setting of ours written where it is ignored (inside a mcpServers entry,
// which other clients' keys may share, or at the top level) is a warning
// naming where it belongs; other clients' keys are not.
func TestParseWarnings(t *testing.T) {
	const file = `{
	  "replicas": 2,
	  "maxInFlight": 8,
	  "inputs": [],
	  "mcpServers": {
	    "x": {"url": "http://127.0.0.1:1/mcp", "replicas": ["http://127.0.0.1:2/mcp"], "mode": "shared", "alwaysAllow": ["echo"], "timeout": 60},
	    "off": {"command": "srv", "maxSessions": 2, "disabled": true}
	  },
	  "servers": {"y": {"command": "srv", "minSessions": 1, "dev": {"watch": "src/**"}}},
	  "gateway": {"servers": {"x": {"mode": "shared", "forwardHeaders": ["X-Key"]}, "y": {"mode": "passthrough", "spares": 1}}}
	}`
	_, err := config.Parse("mcp.json", []byte(file), env(nil))
	if err == nil || !strings.Contains(err.Error(), "gateway.servers.y.mode") {
		t.Fatalf("passthrough on stdio: %v", err)
	}
	f, err := config.Parse("mcp.json", []byte(strings.Replace(file, `"passthrough", "spares"`, `"shared", "spares"`, 1)), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`mcp.json: "replicas" belongs in mcpool.defaults or mcpool.servers.NAME, not at the top level: it is ignored there`,
		`mcp.json: "maxInFlight" belongs in gateway, not at the top level: it is ignored there`,
		`mcp.json: server "x": "replicas" belongs in mcpool.servers.x, not in mcpServers.x: it is ignored there`,
		`mcp.json: server "x": "mode" belongs in gateway.servers.x, not in mcpServers.x: it is ignored there`,
		`mcp.json: server "y": "minSessions" belongs in mcpool.servers.y, not in servers.y: it is ignored there`,
		`mcp.json: server "x": gateway.servers.x.forwardHeaders applies to mode passthrough only: it is ignored`,
		`mcp.json: server "y": gateway.servers.y.spares applies to mode isolated only: it is ignored`,
	}
	if !slices.Equal(f.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(f.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if x := f.Group.Servers[0]; len(x.Replicas) != 0 || x.Config.URL != "http://127.0.0.1:1/mcp" {
		t.Errorf("x: %+v: the misplaced replicas must be ignored", x)
	}
}
