package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var quiet = slog.New(slog.DiscardHandler)

// newGroup makes a group and closes it when the test ends.
func newGroup(t *testing.T, cfg mcpool.GroupConfig) *mcpool.Group {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	g, err := mcpool.NewGroup(cfg)
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("Group.Close: %v", err)
		}
	})
	return g
}

// One group over server-everything on stdio, server-everything on HTTP and
// a go-sdk demo server on HTTP: the merged catalogs are namespaced, and
// calls, prompts and resources route to the right server.
func TestGroupMixedServers(t *testing.T) {
	web := startEverythingHTTP(t)
	demo := httpServer(t, demoserver.New(demoserver.Options{}), false)
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "everything", Config: mcpool.Config{Command: everythingStdio(t)}},
		{Name: "web", Config: mcpool.Config{URL: web}},
		{Name: "demo", Config: mcpool.Config{URL: demo}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}

	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := groupNames(tools)
	for _, want := range []string{"everything__echo", "everything__get-sum", "web__echo", "web__get-sum", "demo__echo", "demo__sleep", "demo__structured"} {
		if !slices.Contains(names, want) {
			t.Errorf("merged tools lack %s: %v", want, names)
		}
	}
	for _, n := range names {
		if len(n) > 128 || strings.IndexFunc(n, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.", r))
		}) >= 0 {
			t.Errorf("tool name %q breaks the spec's rules", n)
		}
	}
	// Configuration order: every everything__ tool comes before web__, then demo__.
	if i, j := slices.Index(names, "everything__echo"), slices.Index(names, "web__echo"); i > j || j > slices.Index(names, "demo__echo") {
		t.Errorf("merged list not in configuration order: %v", names)
	}

	for _, c := range []struct{ tool, msg string }{{"everything__echo", "hi stdio"}, {"web__echo", "hi http"}, {"demo__echo", "hi demo"}} {
		res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: map[string]any{"message": c.msg}})
		if err != nil {
			t.Fatalf("%s: %v", c.tool, err)
		}
		if got := text(res); !strings.Contains(got, c.msg) {
			t.Errorf("%s returned %q", c.tool, got)
		}
	}
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "web__get-sum", Arguments: map[string]any{"a": 2, "b": 3}})
	if err != nil || !strings.Contains(text(res), "5") {
		t.Errorf("web__get-sum: %q, %v", text(res), err)
	}

	// Unknown server, unknown tool: typed errors listing what exists.
	_, err = g.CallTool(ctx, &mcp.CallToolParams{Name: "nope__echo"})
	var nf *mcpool.NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, mcpool.ErrNotFound) || nf.Server != "" || !slices.Equal(nf.Known, []string{"everything", "web", "demo"}) {
		t.Errorf("unknown server: %v", err)
	}
	_, err = g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__nope"})
	if !errors.As(err, &nf) || nf.Server != "demo" || !slices.Equal(nf.Known, []string{"demo__echo", "demo__sleep", "demo__structured"}) {
		t.Errorf("unknown tool: %v", err)
	}
	if !strings.Contains(err.Error(), "demo__echo") {
		t.Errorf("message does not list the server's tools: %v", err)
	}

	// Prompts: namespaced, routed.
	prompts, err := g.ListPrompts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pnames []string
	for _, p := range prompts {
		pnames = append(pnames, p.Name)
	}
	if !slices.Contains(pnames, "everything__simple-prompt") || !slices.Contains(pnames, "web__simple-prompt") {
		t.Fatalf("prompts %v", pnames)
	}
	pr, err := g.GetPrompt(ctx, &mcp.GetPromptParams{Name: "web__simple-prompt"})
	if err != nil || len(pr.Messages) == 0 {
		t.Fatalf("GetPrompt: %v", err)
	}

	// Resources keep their URIs; a URI both everything servers list goes
	// to the first.
	resources, err := g.ListResources(ctx)
	if err != nil || len(resources) == 0 {
		t.Fatalf("ListResources: %d, %v", len(resources), err)
	}
	uri := resources[0].URI
	if strings.Contains(uri, "__") && !strings.Contains(uri, "://") {
		t.Errorf("resource URI renamed: %q", uri)
	}
	rr, err := g.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
	if err != nil || len(rr.Contents) == 0 {
		t.Fatalf("ReadResource(%s): %v", uri, err)
	}
	_, err = g.ReadResource(ctx, &mcp.ReadResourceParams{URI: "nowhere://x"})
	if !errors.As(err, &nf) || nf.Kind != "resource" {
		t.Errorf("unknown resource: %v", err)
	}

	if server, tool, err := g.ResolveTool(ctx, "web__get-sum"); server != "web" || tool != "get-sum" || err != nil {
		t.Errorf("ResolveTool: %q %q %v", server, tool, err)
	}
	if server, prompt, err := g.ResolvePrompt(ctx, "everything__simple-prompt"); server != "everything" || prompt != "simple-prompt" || err != nil {
		t.Errorf("ResolvePrompt: %q %q %v", server, prompt, err)
	}
	if server, err := g.ResourceServer(ctx, uri); server != "everything" || err != nil {
		t.Errorf("ResourceServer(%s): %q %v", uri, server, err)
	}
	if n, ok := g.Name("web", "get-sum"); n != "web__get-sum" || !ok {
		t.Errorf("Name: %q %v", n, ok)
	}
	if g.Pool("demo") == nil || g.Pool("nope") != nil || len(g.Replicas("web")) != 1 {
		t.Error("Pool/Replicas lookups")
	}
	st := g.Stats()
	if len(st.Servers) != 3 || st.Servers[2].Name != "demo" || st.Servers[2].Tools != 3 || st.Servers[0].Status != mcpool.StatusHealthy {
		t.Errorf("stats: %+v", st.Servers)
	}
	for _, s := range st.Servers {
		if s.Calls == 0 || s.Sessions == 0 || s.ListError != "" {
			t.Errorf("server %s: %d calls, %d sessions, list error %q", s.Name, s.Calls, s.Sessions, s.ListError)
		}
	}
}

// A server that is down is left out of the merged list and reported; the
// list fails only when every server is down.
func TestGroupServerDown(t *testing.T) {
	demo := httpServer(t, demoserver.New(demoserver.Options{}), false)
	down := "http://" + closedAddr(t) + "/mcp"
	fast := mcpool.Config{URL: down, ConnectTimeout: time.Second, FailureThreshold: 1, AcquireTimeout: 2 * time.Second}
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "down", Config: fast},
		{Name: "demo", Config: mcpool.Config{URL: demo}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := g.Start(ctx)
	var se *mcpool.ServerError
	if !errors.As(err, &se) || se.Server != "down" || !errors.Is(err, mcpool.ErrConnectFailed) {
		t.Fatalf("Start: want a ServerError for down, got %v", err)
	}
	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatalf("ListTools with one server down: %v", err)
	}
	if names := groupNames(tools); !slices.Equal(names, []string{"demo__echo", "demo__sleep", "demo__structured"}) {
		t.Errorf("tools %v", names)
	}
	st := g.Stats()
	if st.Servers[0].ListError == "" || st.Servers[0].Status == mcpool.StatusHealthy || st.Servers[1].ListError != "" {
		t.Errorf("stats do not report the server down: %+v", st.Servers)
	}
	if strings.Contains(st.Servers[0].ListError, "mcpool: mcpool:") {
		t.Errorf("prefix twice: %s", st.Servers[0].ListError)
	}
	// A call to the down server fails with its pool's error.
	_, err = g.CallTool(ctx, &mcp.CallToolParams{Name: "down__echo"})
	if !errors.Is(err, mcpool.ErrServerUnavailable) && !errors.Is(err, mcpool.ErrConnectFailed) {
		t.Errorf("call to the down server: %v", err)
	}

	only := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "down", Config: fast}}})
	_, err = only.ListTools(ctx)
	var le *mcpool.ListError
	if !errors.As(err, &le) || len(le.Failed) != 1 || le.Failed[0].Server != "down" {
		t.Errorf("all down: %v", err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A list_changed from one server reaches OnListChanged with the server's
// name, and the next ListTools remakes that server's part only.
func TestGroupListChanged(t *testing.T) {
	one := demoserver.New(demoserver.Options{})
	two := demoserver.New(demoserver.Options{})
	type change struct{ server, kind string }
	changes := make(chan change, 16)
	g := newGroup(t, mcpool.GroupConfig{
		Servers: []mcpool.ServerConfig{
			{Name: "one", Config: mcpool.Config{URL: httpServer(t, one, false)}},
			{Name: "two", Config: mcpool.Config{URL: httpServer(t, two, false)}},
		},
		OnListChanged: func(server, kind string) { changes <- change{server, kind} },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mcp.AddTool(two, &mcp.Tool{Name: "added"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "new"}}}, nil, nil
	})
	select {
	case c := <-changes:
		if c != (change{"two", "tools"}) {
			t.Fatalf("change %+v, want two/tools", c)
		}
	case <-ctx.Done():
		t.Fatal("no list_changed reached OnListChanged")
	}
	after, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(groupNames(after), "two__added") {
		t.Fatalf("tools after the change: %v", groupNames(after))
	}
	// Server one's part was not remade: the very same tool values.
	for i, tool := range before {
		if strings.HasPrefix(tool.Name, "one__") && after[i] != tool {
			t.Errorf("%s was remade though its server did not change", tool.Name)
		}
	}
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "two__added"})
	if err != nil || text(res) != "new" {
		t.Errorf("two__added: %q %v", text(res), err)
	}
}

// Names are kept to the spec's characters and length; a custom separator
// is used as given.
func TestGroupNames(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	mcp.AddTool(srv, &mcp.Tool{Name: strings.Repeat("x", 125)}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "long"}}}, nil, nil
	})
	g := newGroup(t, mcpool.GroupConfig{Separator: "-", Servers: []mcpool.ServerConfig{
		{Name: "my server", Config: mcpool.Config{URL: httpServer(t, srv, false)}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var long string
	for _, tool := range tools {
		if !strings.HasPrefix(tool.Name, "my_server-") || len(tool.Name) > 128 {
			t.Errorf("name %q", tool.Name)
		}
		if strings.HasPrefix(tool.Name, "my_server-xxx") {
			long = tool.Name
		}
	}
	if len(long) != 128 {
		t.Fatalf("long name %q (%d chars), want cut to 128", long, len(long))
	}
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: long})
	if err != nil || text(res) != "long" {
		t.Errorf("calling the shortened name: %q %v", text(res), err)
	}
	echo, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "my_server-echo", Arguments: map[string]any{"message": "m"}})
	if err != nil || text(echo) != "m" {
		t.Errorf("my_server-echo: %v", err)
	}

	for _, bad := range []mcpool.GroupConfig{
		{Servers: []mcpool.ServerConfig{{Name: "a__b", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}}}},
		{Separator: "/", Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}}}},
		{Servers: []mcpool.ServerConfig{{Name: "a b", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}}, {Name: "a_b", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}}}},
		{Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{MaxSessions: -1, URL: "http://127.0.0.1:1/mcp"}}}},
	} {
		if _, err := mcpool.NewGroup(bad); !errors.Is(err, mcpool.ErrInvalidConfig) {
			t.Errorf("NewGroup(%+v): %v, want ErrInvalidConfig", bad.Servers[0].Name, err)
		}
	}
	_, err = mcpool.NewGroup(mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{MaxSessions: -1, URL: "http://127.0.0.1:1/mcp"}}}})
	if err == nil || !strings.Contains(err.Error(), `Servers["a"].MaxSessions`) {
		t.Errorf("the error does not name the server's field: %v", err)
	}
}

// replicaServer is a go-sdk demo server on loopback HTTP that a test can
// kill: its listener and every connection close at once, as when its
// process dies.
type replicaServer struct {
	url  string
	mu   sync.Mutex
	n    int
	kill func()
}

func (r *replicaServer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func startReplica(t *testing.T) *replicaServer {
	t.Helper()
	r := &replicaServer{}
	srv := demoserver.New(demoserver.Options{OnCall: func(*mcp.ServerSession, string) func() {
		return func() {
			r.mu.Lock()
			r.n++
			r.mu.Unlock()
		}
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: demoserver.Handler(srv, false, 0), ErrorLog: nil}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	var once sync.Once
	r.kill = func() {
		once.Do(func() {
			_ = hs.Close() // listener and every connection, at once
			<-done
			for ss := range srv.Sessions() {
				_ = ss.Close()
			}
		})
	}
	t.Cleanup(r.kill)
	r.url = fmt.Sprintf("http://%s/mcp", ln.Addr())
	return r
}

// groupNames returns the tools' names in the order listed.
func groupNames(tools []*mcp.Tool) []string {
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	return names
}

// Header values, environment values and URL credentials from a config
// file appear in no error, log line or Stats.
func TestGroupNoSecrets(t *testing.T) {
	const secret = "s3cr3t"
	var seen sync.Map
	srv := demoserver.New(demoserver.Options{})
	h := demoserver.Handler(srv, false, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"), true)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close) // after the group's Close, registered later
	file := fmt.Sprintf(`{"mcpServers": {
	  "up": {"url": "%s/mcp?key=${KEY}", "headers": {"Authorization": "Bearer ${TOKEN}"}},
	  "down": {"url": "http://user:${TOKEN}@%s/mcp?key=${KEY}", "headers": {"X-Key": "${KEY}"}},
	  "proc": {"command": "/nonexistent/server", "args": ["--token", "${TOKEN}"], "env": {"API_KEY": "${KEY}"}}
	}, "mcpool": {"defaults": {"failureThreshold": 1, "connectTimeout": "2s"}}}`, ts.URL, closedAddr(t))
	cf, err := config.Parse("mcp.json", []byte(file), env(map[string]string{"TOKEN": secret + "-token", "KEY": secret + "-key"}))
	if err != nil {
		t.Fatal(err)
	}
	gc := &cf.Group
	var logs bytes.Buffer
	var logMu sync.Mutex
	gc.Logger = slog.New(slog.NewTextHandler(lockedWriter{b: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := newGroup(t, *gc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var texts []string
	if err := g.Start(ctx); err != nil {
		texts = append(texts, err.Error())
	}
	if _, err := g.ListTools(ctx); err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	if _, ok := seen.Load("Bearer " + secret + "-token"); !ok {
		t.Error("the expanded header did not reach the server")
	}
	for _, name := range []string{"down__echo", "proc__echo", "up__nope"} {
		if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: name}); err != nil {
			texts = append(texts, err.Error())
		} else {
			t.Errorf("%s: no error", name)
		}
	}
	texts = append(texts, fmt.Sprintf("%+v", g.Stats()))
	logMu.Lock()
	texts = append(texts, logs.String())
	logMu.Unlock()
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("a secret leaked: %s", s)
		}
	}
}

// A server that has not answered when the caller's ctx ends is left out of
// the merged list, like one that is down; it joins once it answers.
func TestGroupSlowServerLeftOut(t *testing.T) {
	slow := demoserver.New(demoserver.Options{})
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	slow.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return next(ctx, method, req)
		}
	})
	slowURL := httpServer(t, slow, false)
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "slow", Config: mcpool.Config{URL: slowURL}},
		{Name: "demo", Config: mcpool.Config{URL: httpServer(t, demoserver.New(demoserver.Options{}), false)}},
	}})
	t.Cleanup(unblock) // before the group closes: cleanups run last first
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The slow server's list is blocked until release: this ctx surely ends first.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	tools, err := g.ListTools(short)
	cancelShort()
	if err != nil {
		t.Fatalf("ListTools with a slow server: %v", err)
	}
	if names := groupNames(tools); !slices.Equal(names, []string{"demo__echo", "demo__sleep", "demo__structured"}) {
		t.Errorf("tools %v, want the demo server's only", names)
	}
	if st := g.Stats(); st.Servers[0].ListError == "" {
		t.Error("the slow server is not reported")
	}
	unblock()
	eventually(t, "the slow server's tools in the list", func() bool {
		tools, err := g.ListTools(ctx)
		return err == nil && len(tools) == 6
	})
}

// An error the group returns says "mcpool: " once, even when the pool's
// error wraps another that says it.
func TestGroupErrorPrefixOnce(t *testing.T) {
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "down", Config: mcpool.Config{URL: "http://" + closedAddr(t) + "/mcp", FailureThreshold: 1}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "down__echo"})
	if err == nil || strings.Count(err.Error(), "mcpool: ") != 1 || !strings.HasPrefix(err.Error(), "mcpool: ") {
		t.Errorf("error %q: want one mcpool: prefix, at the start", err)
	}
	if !errors.Is(err, mcpool.ErrServerUnavailable) && !errors.Is(err, mcpool.ErrConnectFailed) {
		t.Errorf("error %v lost its chain", err)
	}
}
