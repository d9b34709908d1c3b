package mcpool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A pool over streamable HTTP: start it, call a tool, close it.
func Example() {
	// A go-sdk demo server on loopback stands in for a real one.
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	url := ts.URL // your server's streamable HTTP endpoint, e.g. "https://mcp.example/mcp"

	pool, err := mcpool.New(mcpool.Config{URL: url, MinSessions: 2, MaxSessions: 8})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer pool.Close(ctx)
	if err := pool.Start(ctx); err != nil {
		// errors.As(err, &ce) finds the *mcpool.ConnectError; it matches
		// mcpool.ErrServerUnavailable if the circuit breaker opened.
		log.Fatal(err)
	}
	res, err := pool.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output: hello
}

// A relay passes a tool's result on undecoded: under WithRawResult the
// result object comes back as the server sent it, ready to be written to
// the relay's own client.
func ExampleWithRawResult() {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	pool, err := mcpool.New(mcpool.Config{URL: ts.URL})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer pool.Close(ctx)

	var raw mcpool.RawResult
	res, err := pool.CallTool(mcpool.WithRawResult(ctx, &raw), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}})
	if err != nil {
		log.Fatal(err)
	}
	if raw.JSON == nil { // the session cannot take the raw path: res is the SDK's
		raw.JSON, _ = json.Marshal(res)
	}
	fmt.Println(string(raw.JSON), res.IsError)
	// Output: {"content":[{"type":"text","text":"hello"}]} false
}

// Acquire a lease for several requests on one session, for example to
// read a tool list page by page with its cursors.
func ExamplePool_Acquire() {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	pool, err := mcpool.New(mcpool.Config{URL: ts.URL})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer pool.Close(ctx)

	lease, err := pool.Acquire(ctx)
	if err != nil {
		log.Fatal(err) // ErrPoolExhausted, ErrPoolClosed or a *ConnectError
	}
	defer lease.Release()
	res, err := lease.Session().ListTools(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(res.Tools), "tools on session", lease.SessionID())
	// Output: 3 tools on session 1
}

// A stdio server: each session is its own child process, reaped on Close.
func ExampleCommand() {
	pool, err := mcpool.New(mcpool.Config{
		Command:     &mcpool.Command{Path: "npx", Args: []string{"-y", "@modelcontextprotocol/server-everything", "stdio"}},
		MinSessions: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())
}

// ListTools is cached and shared; list_changed from the server empties it.
func ExamplePool_ListTools() {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	pool, err := mcpool.New(mcpool.Config{URL: ts.URL})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer pool.Close(ctx)
	for range 3 {
		if _, err := pool.ListTools(ctx); err != nil {
			log.Fatal(err)
		}
	}
	st := pool.Stats()
	fmt.Printf("hits %d, misses %d\n", st.CacheHits, st.CacheMisses)
	// Output: hits 2, misses 1
}

// Pool per end user in a multi-tenant agent: each user gets sessions and a
// tool catalog of their own, authenticated with their own token, and a
// token that rotates reaches their live sessions at once.
func ExampleKeyed() {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()

	tokens := map[string]string{"alice": "token-for-alice", "bob": "token-for-bob"} // your token store
	users, err := mcpool.NewKeyed(mcpool.KeyedConfig{
		Config:        mcpool.Config{URL: ts.URL, MaxSessions: 2},
		MaxIdentities: 1000, // idle users beyond this are evicted, least recently used first
		ForIdentity: func(user string, cfg *mcpool.Config) error {
			cfg.Token = func(ctx context.Context, refresh bool) (string, error) {
				return tokens[user], nil // read per request: rotation is immediate
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer users.Close(ctx)

	for _, user := range []string{"alice", "bob"} {
		res, err := users.CallTool(ctx, user, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi " + user}})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	}
	fmt.Println(users.Stats().Identities, "identities")
	// Output:
	// hi alice
	// hi bob
	// 2 identities
}

// Per-call headers on a shared warm session: only this call's request
// carries them.
func ExampleWithHeaders() {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	pool, err := mcpool.New(mcpool.Config{URL: ts.URL})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	ctx := mcpool.WithHeaders(context.Background(), http.Header{"X-Request-Id": {"req-42"}})
	if _, err := pool.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "traced"}}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok")
	// Output: ok
}

// A group of two servers used as one: the merged catalog names each tool
// server__tool, and calls route by that name.
func ExampleGroup() {
	// Two go-sdk demo servers on loopback stand in for real ones.
	search := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer search.Close()
	files := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer files.Close()

	g, err := mcpool.NewGroup(mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "search", Config: mcpool.Config{URL: search.URL}},
		{Name: "files", Config: mcpool.Config{URL: files.URL}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer g.Close(ctx)
	if err := g.Start(ctx); err != nil {
		log.Print(err) // the servers that did not start, each a *mcpool.ServerError
	}
	tools, err := g.ListTools(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tools {
		fmt.Println(t.Name)
	}
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "files__echo", Arguments: map[string]any{"message": "routed"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// search__echo
	// search__sleep
	// search__structured
	// files__echo
	// files__sleep
	// files__structured
	// routed
}
