package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/config"
)

// A server's "auth" is expanded from the environment; its token goes into
// the Config of the server and of every replica; the OAuth settings are
// handed to the caller in ServerConfig.Auth.
func TestParseAuth(t *testing.T) {
	const file = `{
	  "mcpServers": {
	    "gh": {"url": "https://api.example.com/mcp"},
	    "ci": {"url": "https://ci.example.com/mcp"},
	    "plain": {"url": "https://plain.example.com/mcp"}
	  },
	  "mcpool": {"servers": {
	    "gh": {"auth": {"token": "${GH_TOKEN}"}, "replicas": ["https://a.example.com/mcp", "https://b.example.com/mcp"]},
	    "ci": {"auth": {"clientId": "ci-bot", "clientSecret": "${CI_SECRET}"}}
	  }}
	}`
	cf, err := config.Parse("mcp.json", []byte(file), env(map[string]string{"GH_TOKEN": "ghp_x", "CI_SECRET": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	gc := &cf.Group
	gh, ci, plain := gc.Servers[0], gc.Servers[1], gc.Servers[2]
	for i, r := range gh.Replicas {
		if r.BearerToken != "ghp_x" {
			t.Errorf("gh replica %d: BearerToken %q, want the expanded token", i, r.BearerToken)
		}
	}
	if gh.Auth == nil || gh.Auth.Token != "ghp_x" {
		t.Errorf("gh: Auth %+v", gh.Auth)
	}
	if a := ci.Auth; a == nil || a.ClientID != "ci-bot" || a.ClientSecret != "s3cret" || a.OAuth || ci.Config.BearerToken != "" {
		t.Errorf("ci: Auth %+v, BearerToken %q: want the client credentials, no token", a, ci.Config.BearerToken)
	}
	if plain.Auth != nil {
		t.Errorf("plain: Auth %+v, want nil", plain.Auth)
	}

	// Errors name the field, never the value.
	_, err = config.Parse("mcp.json", []byte(`{"mcpServers": {"s": {"url": "https://x/mcp"}},
	  "mcpool": {"servers": {"s": {"auth": {"token": "sekrit", "clientId": "x"}}}}}`), env(nil))
	var fe *config.FileError
	if !errors.As(err, &fe) || fe.Field != "mcpool.servers.s.auth" || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("token with clientId: %v; want a FileError on mcpool.servers.s.auth without the token", err)
	}
}
