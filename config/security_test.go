package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/config"
)

// The security keys of the gateway section are read as documented.
func TestParseGatewaySecurity(t *testing.T) {
	const file = `{
	  "mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}, "x": {"url": "http://127.0.0.1:2/mcp"}},
	  "gateway": {
	    "auth": {"issuer": "https://auth.example.com", "audience": "https://mcp.example.com/mcp", "scopes": ["mcp:tools"]},
	    "rateLimit": {"perIdentity": {"rate": 5, "burst": 20}},
	    "servers": {
	      "a": {"mode": "shared", "tools": {"allow": ["get_*"], "deny": ["*_secret"]}, "access": {"scopes": ["s"], "subjects": ["team-*"]}, "rateLimit": {"rate": 1}},
	      "x": {"mode": "passthrough", "tokenExchange": {"tokenURL": "https://auth.example.com/token", "clientID": "gw", "clientSecret": "${CS}", "audience": "urn:x"}}
	    }
	  }
	}`
	f, err := config.Parse("mcp.json", []byte(file), env(map[string]string{"CS": "client-s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Gateway
	if g.Auth == nil || g.Auth.Issuer != "https://auth.example.com" || g.Auth.Audience != "https://mcp.example.com/mcp" || !slices.Equal(g.Auth.Scopes, []string{"mcp:tools"}) {
		t.Errorf("auth %+v", g.Auth)
	}
	if g.RateLimit == nil || g.RateLimit.Rate != 5 || g.RateLimit.Burst != 20 {
		t.Errorf("rateLimit %+v", g.RateLimit)
	}
	a := g.Servers["a"]
	if !slices.Equal(a.Tools.Allow, []string{"get_*"}) || !slices.Equal(a.Tools.Deny, []string{"*_secret"}) ||
		!slices.Equal(a.Access.Subjects, []string{"team-*"}) || a.RateLimit == nil || a.RateLimit.Rate != 1 {
		t.Errorf("server a %+v", a)
	}
	if x := g.Servers["x"].TokenExchange; x == nil || x.ClientSecret != "client-s3cret" || x.Audience != "urn:x" {
		t.Errorf("tokenExchange %+v", x)
	}
}

// Token passthrough and its look-alikes are refused, saying what to do.
func TestParseGatewaySecurityErrors(t *testing.T) {
	const one = `"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}`
	for _, tc := range []struct{ name, gateway, field, says string }{
		{"forward Authorization", `{"servers": {"a": {"mode": "passthrough", "forwardHeaders": ["authorization"]}}}`,
			"gateway.servers.a.forwardHeaders", "token passthrough"},
		{"passthrough with nothing to send", `{"servers": {"a": {"mode": "passthrough"}}}`,
			"gateway.servers.a", `set "tokenExchange"`},
		{"token exchange off passthrough", `{"servers": {"a": {"mode": "shared", "tokenExchange": {"tokenURL": "https://as/token", "audience": "urn:a"}}}}`,
			"gateway.servers.a.tokenExchange", `"mode": "passthrough"`},
		{"token exchange without audience", `{"servers": {"a": {"mode": "passthrough", "tokenExchange": {"tokenURL": "https://as/token"}}}}`,
			"gateway.servers.a.tokenExchange.audience", "is required"},
		{"bad glob", `{"servers": {"a": {"tools": {"deny": ["[x"]}}}}`,
			"gateway.servers.a.tools.deny", "not a glob"},
		{"auth without issuer", `{"auth": {"audience": "https://mcp.example.com/mcp"}}`,
			"gateway.auth.issuer", "is required"},
		{"zero rate", `{"rateLimit": {"perIdentity": {"rate": 0, "burst": 3}}}`,
			"gateway.rateLimit", "rate must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("mcp.json", []byte(`{`+one+`, "gateway": `+tc.gateway+`}`), env(nil))
			var fe *config.FileError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.says) {
				t.Errorf("error %v; want field %s saying %q", err, tc.field, tc.says)
			}
		})
	}
}

// A misspelt key inside a nested security object is an error naming it,
// never a setting silently ignored.
func TestParseNestedKeysChecked(t *testing.T) {
	const servers = `"mcpServers": {"x": {"url": "http://127.0.0.1:1/mcp"}}`
	for _, tc := range []struct{ gateway, field string }{
		{`{"servers": {"x": {"tools": {"alow": ["a*"]}}}}`, "gateway.servers.x.tools.alow"},
		{`{"servers": {"x": {"access": {"subject": ["a"]}}}}`, "gateway.servers.x.access.subject"},
		{`{"rateLimit": {"perIdentity": {"rate": 1, "brust": 2}}}`, "gateway.rateLimit.perIdentity.brust"},
		{`{"auth": {"isuer": "https://127.0.0.1:1"}}`, "gateway.auth.isuer"},
	} {
		_, err := config.Parse("mcp.json", []byte(`{`+servers+`, "gateway": `+tc.gateway+`}`), func(string) (string, bool) { return "", false })
		var fe *config.FileError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want an error naming %s", tc.gateway, err, tc.field)
		}
	}
}

// gateway.auth takes the client credentials of the introspection endpoint,
// the secret expanded from the environment; every authorization server URL
// must be https but on loopback; the errors name the key, never the secret.
func TestParseGatewayAuthHardening(t *testing.T) {
	const one = `"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}}`
	parse := func(gateway string) (*config.File, error) {
		return config.Parse("mcp.json", []byte(`{`+one+`, "gateway": `+gateway+`}`), env(map[string]string{"IS": "introspect-s3cret"}))
	}
	f, err := parse(`{"auth": {"issuer": "https://auth.example.com", "introspectionURL": "https://auth.example.com/introspect",
	  "clientID": "mcp-gateway", "clientSecret": "${IS}"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Gateway.Auth; a.ClientID != "mcp-gateway" || a.ClientSecret != "introspect-s3cret" {
		t.Errorf("auth %q %q", a.ClientID, a.ClientSecret)
	}
	for _, loopback := range []string{"http://127.0.0.1:9000", "http://localhost:9000/realms/x", "http://[::1]:9000"} {
		if _, err := parse(`{"auth": {"issuer": "` + loopback + `", "jwksURL": "` + loopback + `/jwks"}}`); err != nil {
			t.Errorf("loopback %s: %v", loopback, err)
		}
	}
	for _, tc := range []struct{ name, gateway, field, says string }{
		{"plain-http issuer", `{"auth": {"issuer": "http://auth.example.com"}}`, "gateway.auth.issuer", "must be https"},
		{"plain-http key set", `{"auth": {"issuer": "https://auth.example.com", "jwksURL": "http://auth.example.com/jwks"}}`,
			"gateway.auth.jwksURL", "must be https"},
		{"plain-http introspection", `{"auth": {"issuer": "https://auth.example.com", "introspectionURL": "http://10.1.2.3/introspect", "clientID": "gw", "clientSecret": "${IS}"}}`,
			"gateway.auth.introspectionURL", "must be https"},
		{"plain-http token exchange", `{"auth": {"issuer": "https://auth.example.com"}, "servers": {"a": {"mode": "passthrough",
			"tokenExchange": {"tokenURL": "http://auth.example.com/token", "audience": "urn:a"}}}}`, "gateway.servers.a.tokenExchange.tokenURL", "must be https"},
		{"introspection without client", `{"auth": {"issuer": "https://auth.example.com", "introspectionURL": "https://auth.example.com/introspect"}}`,
			"gateway.auth.clientID", "RFC 7662"},
		{"introspection without secret", `{"auth": {"issuer": "https://auth.example.com", "introspectionURL": "https://auth.example.com/introspect", "clientID": "gw"}}`,
			"gateway.auth.clientID", "client secret"},
		{"secret without client", `{"auth": {"issuer": "https://auth.example.com", "introspectionURL": "https://auth.example.com/introspect", "clientSecret": "${IS}"}}`,
			"gateway.auth.clientSecret", "without a client ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.gateway)
			var fe *config.FileError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.says) || strings.Contains(err.Error(), "introspect-s3cret") {
				t.Errorf("error %v; want field %s saying %q, without the secret", err, tc.field, tc.says)
			}
		})
	}
	// Credentials without an introspection endpoint are ignored, said so.
	f, err = parse(`{"auth": {"issuer": "https://auth.example.com", "clientID": "gw", "clientSecret": "${IS}"}}`)
	if err != nil || len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "gateway.auth.clientID") || strings.Contains(f.Warnings[0], "introspect-s3cret") {
		t.Errorf("credentials without introspectionURL: %v %q", err, f.Warnings)
	}
}
