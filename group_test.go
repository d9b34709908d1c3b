package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// awkwardServer is a go-sdk server whose tools and prompts have names that
// are not valid tool names, or too long; each answers label/its own name.
func awkwardServer(label string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: label, Version: "1"}, nil)
	for _, name := range awkwardTools {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: label + "/" + req.Params.Name}}}, nil
		})
	}
	for _, name := range []string{"greet", "hi there"} {
		s.AddPrompt(&mcp.Prompt{Name: name}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: label + "/" + req.Params.Name, Messages: []*mcp.PromptMessage{}}, nil
		})
	}
	return s
}

var awkwardTools = []string{"echo", "say hello", "grüßen", "a.b-c_d", strings.Repeat("t", 130)}

// awkwardServers are server names of every kind the naming rule must
// handle: a space, a dot, 200 characters, other scripts.
var awkwardServers = []string{"my server", "Acme.Docs", strings.Repeat("a long server name ", 11)[:200], "données", "日本語"}

func validToolName(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == ""
}

// Whatever the servers' and tools' names hold, the group's names are valid
// tool names, distinct, and route back to the server's own tool and prompt:
// through Group.CallTool and GetPrompt, ResolveTool, and Group.Server under
// the server's own names.
func TestGroupNamingAwkwardNames(t *testing.T) {
	gc := mcpool.GroupConfig{}
	for i, name := range awkwardServers {
		gc.Servers = append(gc.Servers, mcpool.ServerConfig{Name: name, Config: mcpool.Config{URL: httpServer(t, awkwardServer(fmt.Sprint(i)), false)}})
	}
	g := newGroup(t, gc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != len(awkwardServers)*len(awkwardTools) {
		t.Fatalf("%d tools, want %d", len(tools), len(awkwardServers)*len(awkwardTools))
	}
	seen := map[string]bool{}
	for _, tool := range tools {
		if !validToolName(tool.Name) || seen[tool.Name] {
			t.Errorf("tool name %q: invalid or listed twice", tool.Name)
		}
		seen[tool.Name] = true
		server, own, err := g.ResolveTool(ctx, tool.Name)
		if err != nil {
			t.Fatalf("ResolveTool(%q): %v", tool.Name, err)
		}
		label := fmt.Sprint(slices.Index(awkwardServers, server))
		if n, _ := g.Name(server, own); n != tool.Name {
			t.Errorf("Name(%q, %q) = %q, want %q", server, own, n, tool.Name)
		}
		res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: tool.Name})
		if err != nil || text(res) != label+"/"+own {
			t.Errorf("CallTool(%q) = %q, %v; want %s/%s", tool.Name, text(res), err, label, own)
		}
		res, err = g.Server(server).CallTool(ctx, &mcp.CallToolParams{Name: own})
		if err != nil || text(res) != label+"/"+own {
			t.Errorf("Server(%q).CallTool(%q) = %q, %v", server, own, text(res), err)
		}
	}
	for _, want := range []string{"my_server__echo", "my_server__a.b-c_d", "Acme.Docs__echo", "donn_es__echo"} {
		if !seen[want] {
			t.Errorf("no tool %q among %v", want, slices.Sorted(maps.Keys(seen)))
		}
	}
	prompts, err := g.ListPrompts(ctx)
	if err != nil || len(prompts) != 2*len(awkwardServers) {
		t.Fatalf("ListPrompts: %d, %v", len(prompts), err)
	}
	for _, p := range prompts {
		server, own, err := g.ResolvePrompt(ctx, p.Name)
		if !validToolName(p.Name) || err != nil {
			t.Fatalf("prompt %q: %v", p.Name, err)
		}
		res, err := g.GetPrompt(ctx, &mcp.GetPromptParams{Name: p.Name})
		if want := fmt.Sprint(slices.Index(awkwardServers, server)) + "/" + own; err != nil || res.Description != want {
			t.Errorf("GetPrompt(%q) = %v, %v; want %s", p.Name, res, err, want)
		}
	}
	own, err := g.Server("my server").ListTools(ctx)
	if err != nil || len(own) != len(awkwardTools) || !slices.ContainsFunc(own, func(t *mcp.Tool) bool { return t.Name == "say hello" }) {
		t.Errorf("Server(\"my server\").ListTools: %d tools, %v; want the server's own names", len(own), err)
	}
	if st := g.Server("Acme.Docs").Stats(); st.Status != mcpool.StatusHealthy || st.Breaker != "closed" {
		t.Errorf("Server(\"Acme.Docs\").Stats: status %q, breaker %q", st.Status, st.Breaker)
	}
	if g.Server("nope") != nil {
		t.Error("Server of an unknown name is not nil")
	}
}

// Two servers whose names become the same in tool names are an error at
// load that names both; Unprefixed needs exactly one server.
func TestGroupNamingCollisions(t *testing.T) {
	url := "http://127.0.0.1:1/mcp"
	for _, pair := range [][2]string{{"my server", "my_server"}, {"a b", "a\tb"}, {"日本語", "日本語"}, {"a", "a_"}} {
		gc := mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: pair[0], Config: mcpool.Config{URL: url}}, {Name: pair[1], Config: mcpool.Config{URL: url}}}}
		_, err := mcpool.NewGroup(gc)
		if !errors.Is(err, mcpool.ErrInvalidConfig) || !strings.Contains(err.Error(), fmt.Sprintf("%q", pair[0])) || !strings.Contains(err.Error(), fmt.Sprintf("%q", pair[1])) {
			t.Errorf("NewGroup with servers %q and %q: %v; want ErrInvalidConfig naming both", pair[0], pair[1], err)
		}
		if _, nerr := gc.Naming(); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("Naming: %v; want NewGroup's error", nerr)
		}
	}
	// Different scripts get different names.
	gc := mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "日本語"}, {Name: "中文"}}}
	n, err := gc.Naming()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := n.Name("日本語", "echo")
	b, _ := n.Name("中文", "echo")
	if a == b || !validToolName(a) || !validToolName(b) {
		t.Errorf("names %q and %q: want two valid, distinct names", a, b)
	}
	if s, rest, ok := n.Route(b); !ok || s != "中文" || rest != "echo" {
		t.Errorf("Route(%q) = %q, %q, %v", b, s, rest, ok)
	}
	// The documented example: a part with no letter or digit is 8 hex
	// digits of the name's SHA-256.
	gc = mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "ü"}}}
	if n, err = gc.Naming(); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.Name("ü", "echo"); got != "607474ca__echo" {
		t.Errorf(`Name("ü", "echo") = %q; want 607474ca__echo`, got)
	}

	_, err = mcpool.NewGroup(mcpool.GroupConfig{Unprefixed: true, Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{URL: url}}, {Name: "b", Config: mcpool.Config{URL: url}}}})
	if !errors.Is(err, mcpool.ErrInvalidConfig) || !strings.Contains(err.Error(), "Unprefixed") {
		t.Errorf("Unprefixed with two servers: %v", err)
	}
}

// Unprefixed: the one server's own names, still kept valid.
func TestGroupNamingUnprefixed(t *testing.T) {
	g := newGroup(t, mcpool.GroupConfig{Unprefixed: true, Servers: []mcpool.ServerConfig{
		{Name: "my server", Config: mcpool.Config{URL: httpServer(t, awkwardServer("u"), false)}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools {
		names = append(names, tool.Name)
		if !validToolName(tool.Name) {
			t.Errorf("invalid name %q", tool.Name)
		}
		_, own, err := g.ResolveTool(ctx, tool.Name)
		if res, cerr := g.CallTool(ctx, &mcp.CallToolParams{Name: tool.Name}); err != nil || cerr != nil || text(res) != "u/"+own {
			t.Errorf("%q: %q, %v, %v", tool.Name, text(res), err, cerr)
		}
	}
	if !slices.Contains(names, "echo") || !slices.Contains(names, "a.b-c_d") || slices.Contains(names, "say hello") {
		t.Errorf("names %v: want echo and a.b-c_d as they are, say hello made valid", names)
	}
}

// Update under load: 16 callers call the servers that stay while the group
// adds one, removes one (a call in flight on it, through a GroupServer
// taken before) and replaces one (its URL, to another live server). No
// call to a server that stays fails; the removed server's call finishes,
// and its pools close once it has; the new server is listed and called.
func TestGroupUpdate(t *testing.T) {
	url := func() string { return httpServer(t, demoserver.New(demoserver.Options{}), false) }
	a, b, b2, gone, added := url(), url(), url(), url(), url()
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "a", Config: mcpool.Config{URL: a}},
		{Name: "b", Config: mcpool.Config{URL: b}},
		{Name: "gone", Config: mcpool.Config{URL: gone}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	handleA, handleGone := g.Server("a"), g.Server("gone")
	if g.Server("a") != handleA {
		t.Error("Group.Server returned two handles for one server")
	}
	goneCall := make(chan error, 1)
	go func() {
		_, err := handleGone.CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 800}})
		goneCall <- err
	}()
	eventually(t, "the call to the removed server in flight", func() bool { return g.Pool("gone").Stats().CallsInFlight == 1 })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	for i := range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch i % 3 {
				case 0:
					_, err = g.CallTool(ctx, &mcp.CallToolParams{Name: "a__echo", Arguments: map[string]any{"message": "m"}})
				case 1:
					_, err = g.CallTool(ctx, &mcp.CallToolParams{Name: "b__echo", Arguments: map[string]any{"message": "m"}})
				case 2:
					_, err = handleA.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "m"}})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
			}
		})
	}
	eventually(t, "calls under way", func() bool { return calls.Load() > 64 })
	oldB := g.Pool("b")
	u, err := g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "a", Config: mcpool.Config{URL: a}},
		{Name: "b", Config: mcpool.Config{URL: b2}},
		{Name: "added", Config: mcpool.Config{URL: added}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Added, []string{"added"}) || !slices.Equal(u.Removed, []string{"gone"}) || !slices.Equal(u.Replaced, []string{"b"}) {
		t.Errorf("update added %v, removed %v, replaced %v", u.Added, u.Removed, u.Replaced)
	}
	if got := g.Servers(); !slices.Equal(got, []string{"a", "b", "added"}) {
		t.Errorf("servers after the update: %v", got)
	}
	if g.Server("a") != handleA {
		t.Error("a server the update kept got a new handle")
	}
	tools, err := g.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := groupNames(tools); !slices.Contains(names, "added__echo") || slices.Contains(names, "gone__echo") {
		t.Errorf("tools after the update: %v", names)
	}
	closed := make(chan error, 1)
	go func() { closed <- u.Close(ctx) }()
	if err := <-goneCall; err != nil {
		t.Errorf("the removed server's call in flight: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("GroupUpdate.Close: %v", err)
	}
	if _, err := handleGone.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "m"}}); !errors.Is(err, mcpool.ErrPoolClosed) {
		t.Errorf("a call through the removed server's handle: %v; want ErrPoolClosed", err)
	}
	before := calls.Load()
	eventually(t, "calls after the update", func() bool { return calls.Load() > before+64 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls to the servers that stay failed; first: %v", n, calls.Load(), firstErr.Load())
	}
	if oldB.Stats().Sessions != 0 {
		t.Error("the replaced server's old pool still has sessions")
	}
	if g.Pool("b").Stats().Acquires == 0 {
		t.Error("no call went to the replaced server's new pool")
	}
}

// An update that adds a server which is down does not wait for the
// server's breaker to open (10s by default) before the rest of the update
// applies: it returns once the server is failing, naming it with the
// connect's failure, and the server joins the group when it comes up.
func TestGroupUpdateAddsAServerThatIsDown(t *testing.T) {
	demo := httpServer(t, demoserver.New(demoserver.Options{}), false)
	srv := demoserver.New(demoserver.Options{})
	starting, up := demoserver.Starting(demoserver.Handler(srv, false, 0))
	ts := httptest.NewServer(starting)
	t.Cleanup(func() { closeServer(ts, srv) })
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "demo", Config: mcpool.Config{URL: demo}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	u, err := g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "demo", Config: mcpool.Config{URL: demo}},
		{Name: "late", Config: mcpool.Config{URL: ts.URL}},
	}})
	took := time.Since(start)
	if u == nil || !slices.Equal(u.Added, []string{"late"}) {
		t.Fatalf("update %+v, %v; want late added", u, err)
	}
	if took >= mcpool.DefaultBreakerOpenAfter/2 {
		t.Errorf("Update took %v with a server down; want it to stop waiting at its first failure, well before its breaker opens (%v)", took, mcpool.DefaultBreakerOpenAfter)
	}
	var se *mcpool.ServerError
	if !errors.As(err, &se) || se.Server != "late" || !errors.Is(err, mcpool.ErrConnectFailed) || errors.Is(err, context.Canceled) {
		t.Fatalf("Update's error %v; want a *ServerError for late matching ErrConnectFailed (not a cancellation)", err)
	}
	if !strings.Contains(err.Error(), "Service Unavailable") {
		t.Errorf("Update's error %q does not give the server's answer", err)
	}
	if res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "m"}}); err != nil || res.IsError {
		t.Errorf("a call to the server already there after the update: %v", err)
	}
	up()
	eventually(t, "the late server connected in the background", func() bool { return g.Pool("late").Stats().Sessions > 0 })
	if res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "late__echo", Arguments: map[string]any{"message": "m"}}); err != nil || res.IsError {
		t.Errorf("a call to the late server once up: %v", err)
	}
}

// Close does not wait behind an Update whose new server is connecting (a
// server that accepts the connection and never answers initialize): it
// closes that server's pool too, and the Update returns ErrPoolClosed.
func TestGroupCloseDuringUpdate(t *testing.T) {
	demo := httpServer(t, demoserver.New(demoserver.Options{}), false)
	var asked atomic.Int64
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		// Read whole, so that net/http notices the client going away.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(stuck.Close)
	g, err := mcpool.NewGroup(mcpool.GroupConfig{Logger: quiet, Servers: []mcpool.ServerConfig{{Name: "demo", Config: mcpool.Config{URL: demo}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		_, err := g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
			{Name: "demo", Config: mcpool.Config{URL: demo}},
			{Name: "stuck", Config: mcpool.Config{URL: stuck.URL, ConnectTimeout: 30 * time.Second}},
		}})
		updated <- err
	}()
	eventually(t, "the new server's connect under way", func() bool { return asked.Load() > 0 })
	start := time.Now()
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	if err := g.Close(cctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Closing the stuck server's pool takes up to 5s of its own: the
	// go-sdk waits that long for its notifications/cancelled of the
	// initialize, which this server does not answer either.
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Close took %v with an Update connecting; want it not to wait for the connect (30s)", took)
	}
	select {
	case err := <-updated:
		if !errors.Is(err, mcpool.ErrPoolClosed) {
			t.Errorf("the Update cut short by Close: %v, want ErrPoolClosed", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the Update did not return 15s after Close")
	}
}

// An update the group cannot take (two servers whose names collide) is an
// error naming both, and the group keeps its servers.
func TestGroupUpdateInvalid(t *testing.T) {
	demo := httpServer(t, demoserver.New(demoserver.Options{}), false)
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "demo", Config: mcpool.Config{URL: demo}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "my server", Config: mcpool.Config{URL: demo}},
		{Name: "my_server", Config: mcpool.Config{URL: demo}},
	}})
	if u != nil || !errors.Is(err, mcpool.ErrInvalidConfig) || !strings.Contains(err.Error(), "my server") || !strings.Contains(err.Error(), "my_server") {
		t.Errorf("update with colliding names: %v, %v; want an ErrInvalidConfig naming both", u, err)
	}
	if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "m"}}); err != nil {
		t.Errorf("after the refused update: %v", err)
	}
	// The same config again changes nothing.
	u, err = g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "demo", Config: mcpool.Config{URL: demo}}}})
	if err != nil || u.Changed() {
		t.Errorf("update with the same config: %+v, %v", u, err)
	}
}

// A call or a list through the group that the caller's deadline ends while
// the server's connects fail says which server and why (not a bare
// context.DeadlineExceeded), and still matches the deadline.
func TestGroupServerDownUntilDeadline(t *testing.T) {
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "down", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}},
	}})
	for name, do := range map[string]func(context.Context) error{
		"CallTool": func(ctx context.Context) error {
			_, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "down__echo"})
			return err
		},
		"ListTools": func(ctx context.Context) error {
			_, err := g.ListTools(ctx)
			return err
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		before := g.Replicas("down")[0].Stats().ConnectErrors
		go func() { errc <- do(ctx) }()
		eventually(t, "a failed connect", func() bool { return g.Replicas("down")[0].Stats().ConnectErrors > before })
		cancel()
		err := <-errc
		mustIs(t, err, mcpool.ErrConnectFailed)
		mustIs(t, err, context.Canceled)
		if msg := err.Error(); !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "http://127.0.0.1:1/mcp") {
			t.Errorf("%s: %v: does not say where and why", name, err)
		}
	}
}
