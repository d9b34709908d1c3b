package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The seam between the command, the library and the gateway: one JSONC
// file, written the way users write them (comments, trailing commas, odd
// server names, one server unreachable), gives the same spec-valid names
// from "mcpool tools --config" and from the gateway in every mix of modes,
// and every listed name can be called through the gateway.
func TestSameNamesThroughCommandAndGateway(t *testing.T) {
	a, b := demoHTTP(t), demoHTTP(t)
	valid := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	for _, modes := range [][2]string{{"shared", "isolated"}, {"isolated", "shared"}} {
		t.Run(modes[0]+"+"+modes[1], func(t *testing.T) {
			body := fmt.Sprintf(`{
  // a team's servers, as VS Code writes them
  "servers": {
    "my server": {"type": "http", "url": "%s",},
    "Acme.Docs": {"type": "http", "url": "%s"}, /* a dotted name */
    "gone": {"type": "http", "url": "http://127.0.0.1:1/mcp"}, // nothing listens there
  },
  "mcpool": {"defaults": {"connectTimeout": "2s", "failureThreshold": 1}},
  "gateway": {"servers": {"my server": {"mode": %q}, "Acme.Docs": {"mode": %q},},},
}`, a, b, modes[0], modes[1])
			path := writeConfig(t, body)
			names := listedNames(t, runCLI(t, "tools", "--config", path))
			want := []string{"Acme.Docs__echo", "Acme.Docs__sleep", "Acme.Docs__structured", "my_server__echo", "my_server__sleep", "my_server__structured"}
			if !slices.Equal(names, want) {
				t.Fatalf("tools --config lists %v, want %v", names, want)
			}
			url, _, _ := startGateway(t, body)
			viaGateway := listedNames(t, runCLI(t, "tools", "--url", url))
			if !slices.Equal(viaGateway, names) {
				t.Fatalf("the gateway lists %v, tools --config %v", viaGateway, names)
			}
			for _, name := range names {
				if !valid.MatchString(name) {
					t.Errorf("%q is not a valid tool name (MCP 2025-11-25)", name)
				}
			}
			for _, name := range []string{"my_server__echo", "Acme.Docs__echo"} {
				r := runCLI(t, "call", "--url", url, name, `{"message":"seam"}`)
				if r.code != 0 || !strings.Contains(r.stdout, "seam") {
					t.Errorf("call %s through the gateway: status %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
				}
				r = runCLI(t, "call", "--config", path, name, `{"message":"seam"}`)
				if r.code != 0 || !strings.Contains(r.stdout, "seam") {
					t.Errorf("call --config %s: status %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}

// listedNames reads the tool names of a "tools" run, which may end with a
// non-zero status when a server of the file is unreachable: the others are
// still listed.
func listedNames(t *testing.T, r cliResult) []string {
	t.Helper()
	var tools []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &tools); err != nil {
		t.Fatalf("status %d, stdout is not a JSON array of tools: %v\n%s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	var names []string
	for _, tool := range tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}
