package main

import (
	"fmt"
	"testing"
)

// Gateway settings that cannot work are refused before anything starts,
// in one line naming the file and the field.
func TestGatewayConfigRefused(t *testing.T) {
	const url = "http://127.0.0.1:1/mcp"
	for _, tc := range []struct{ body, mention string }{
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}, "b": {"url": %q}}, "gateway": {"unprefixed": true}}`, url, url),
			"field gateway.unprefixed: needs exactly one server in the config, not 2"},
		{fmt.Sprintf(`{"mcpServers": {"a": {"url": %q}}, "gateway": {"servers": {"a": {"mode": "passthrough"}}},
		  "mcpool": {"servers": {"a": {"auth": {"token": "sekrit"}}}}}`, url),
			`server "a": field mcpool.servers.a.auth: a passthrough server uses each client's own credentials`},
	} {
		r := runCLI(t, "gateway", "--config", writeConfig(t, tc.body), "--listen", "127.0.0.1:0")
		wantOneLineError(t, r, exitUsage, tc.mention)
	}
}
