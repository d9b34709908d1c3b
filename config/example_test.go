package config_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
)

// Reading the config file other MCP clients use (here VS Code's form, with
// comments and trailing commas), with mcpool's own settings (two replicas,
// balanced by load) and the gateway's in sections they ignore.
func ExampleParse() {
	const file = `{
	  "servers": {
	    // a remote server; the token comes from the environment
	    "github": {"type": "http", "url": "https://api.example.com/mcp",
	               "headers": {"Authorization": "Bearer ${GITHUB_TOKEN:-none}"}},
	    "search": {"url": "http://127.0.0.1:8080/mcp"},
	  },
	  "mcpool": {
	    "servers": {
	      "search": {"replicas": ["http://127.0.0.1:8080/mcp", "http://127.0.0.1:8081/mcp"], "maxSessions": 8},
	    },
	  },
	  "gateway": {"callTimeout": "${CALL_TIMEOUT:-2m}", "servers": {"search": {"mode": "shared"}}},
	}`
	// config.Load(path) reads a file; Parse takes its bytes.
	f, err := config.Parse("mcp.json", []byte(file), nil)
	if err != nil {
		log.Fatal(err) // one line: file, server, field
	}
	for _, w := range f.Warnings {
		log.Print(w) // settings of ours written where they are ignored
	}
	for _, s := range f.Group.Servers {
		fmt.Println(s.Name, len(s.Replicas), s.Balance)
	}
	fmt.Println(f.Gateway.CallTimeout, f.Gateway.Servers["search"].Mode)
	g, err := mcpool.NewGroup(f.Group)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close(context.Background())
	fmt.Println(g.Servers())
	// Output:
	// github 0 least-loaded
	// search 2 least-loaded
	// 2m0s shared
	// [github search]
}
