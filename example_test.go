package mcpool_test

import (
	"context"
	"fmt"
	"log"
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

	pool, err := mcpool.New(mcpool.Config{URL: ts.URL, MinSessions: 2, MaxSessions: 8})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer pool.Close(ctx)
	if err := pool.Start(ctx); err != nil {
		log.Fatal(err) // a *mcpool.ConnectError: the server is unreachable
	}
	res, err := pool.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output: hello
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
