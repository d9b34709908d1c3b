package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/oauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// accessPeer is an upstream MCP server on loopback named name, with a tool
// (st), a prompt (sp), a listed resource (NAME://doc), a resource template
// (NAME://item/{id}), completion and subscriptions; it counts the methods
// it receives.
type accessPeer struct {
	name string
	url  string
	mu   sync.Mutex
	seen map[string]int
}

func newAccessPeer(t *testing.T, name string) *accessPeer {
	t.Helper()
	p := &accessPeer{name: name, seen: map[string]int{}}
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{name + ":" + req.Params.Argument.Value}}}, nil
		},
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			p.mu.Lock()
			p.seen[method]++
			p.mu.Unlock()
			return next(ctx, method, req)
		}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "st"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "sp", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: name}}}}, nil
	})
	doc := name + "://doc"
	s.AddResource(&mcp.Resource{Name: "doc", URI: doc}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: doc, Text: name}}}, nil
	})
	s.AddResourceTemplate(&mcp.ResourceTemplate{Name: "item", URITemplate: name + "://item/{id}"}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: name}}}, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	p.url = ts.URL
	return p
}

// count returns how many requests of method the peer received.
func (p *accessPeer) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[method]
}

// server is the peer as a shared gateway server (its pool speaks
// 2025-11-25, so that each method the gateway sends arrives as itself).
func (p *accessPeer) server(t *testing.T) gateway.Server {
	pool := newPool(t, mcpool.Config{URL: p.url, ProtocolVersion: "2025-11-25"})
	return gateway.Server{Name: p.name, Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)}
}

// The methods routed to one server by a prompt or a URI (completion of a
// prompt or of a template, resources/subscribe and unsubscribe), and
// resources/templates/list, follow the access rule as tools/call,
// prompts/get and resources/read do: a caller without access to sec gets
// what it gets for a server that does not exist (the same error, naming
// only the servers it may see), sees none of sec's templates, and sec
// never hears of its requests; a caller with access is served.
func TestAccessCoversEveryMethod(t *testing.T) {
	as := oauthtest.New(t)
	sec, pub := newAccessPeer(t, "sec"), newAccessPeer(t, "pub")
	secServer := sec.server(t)
	secServer.Access = gateway.Access{Subjects: []string{"admin-*"}}
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{secServer, pub.server(t)}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := connectAs(t, url, as.Token(url, "alice"))
	carol := connectAs(t, url, as.Token(url, "admin-carol"))
	eventually(t, "both servers' resources in the catalog", func() bool {
		res, err := carol.ListResources(ctx, nil)
		return err == nil && len(res.Resources) == 2
	})

	complete := func(cs *mcp.ClientSession, ref *mcp.CompleteReference) (string, error) {
		arg := mcp.CompleteParamsArgument{Name: "who", Value: "a"}
		if ref.Type == "ref/resource" {
			arg.Name = "id"
		}
		res, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: ref, Argument: arg})
		if err != nil {
			return "", err
		}
		return strings.Join(res.Completion.Values, ","), nil
	}
	// Each case's name is sec's; the same name under zzz (no such server)
	// must get the same answer.
	cases := []struct {
		what, name string
		do         func(cs *mcp.ClientSession, name string) error
	}{
		{"completion/complete ref/prompt", "sec__sp", func(cs *mcp.ClientSession, name string) error {
			_, err := complete(cs, &mcp.CompleteReference{Type: "ref/prompt", Name: name})
			return err
		}},
		{"completion/complete ref/prompt of a name sec does not list", "sec__nope", func(cs *mcp.ClientSession, name string) error {
			_, err := complete(cs, &mcp.CompleteReference{Type: "ref/prompt", Name: name})
			return err
		}},
		{"completion/complete ref/resource", "sec://item/{id}", func(cs *mcp.ClientSession, name string) error {
			_, err := complete(cs, &mcp.CompleteReference{Type: "ref/resource", URI: name})
			return err
		}},
		{"resources/subscribe of a listed resource", "sec://doc", func(cs *mcp.ClientSession, name string) error {
			return cs.Subscribe(ctx, &mcp.SubscribeParams{URI: name})
		}},
		{"resources/subscribe of a templated resource", "sec://item/1", func(cs *mcp.ClientSession, name string) error {
			return cs.Subscribe(ctx, &mcp.SubscribeParams{URI: name})
		}},
		{"resources/unsubscribe", "sec://doc", func(cs *mcp.ClientSession, name string) error {
			return cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: name})
		}},
		{"tools/call", "sec__st", func(cs *mcp.ClientSession, name string) error {
			_, err := call(ctx, cs, name, map[string]any{})
			return err
		}},
		{"tools/call of a name sec does not list", "sec__nope", func(cs *mcp.ClientSession, name string) error {
			_, err := call(ctx, cs, name, map[string]any{})
			return err
		}},
		{"prompts/get", "sec__sp", func(cs *mcp.ClientSession, name string) error {
			_, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: name, Arguments: map[string]string{"who": "a"}})
			return err
		}},
		{"resources/read", "sec://doc", func(cs *mcp.ClientSession, name string) error {
			_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: name})
			return err
		}},
	}
	for _, c := range cases {
		err := c.do(alice, c.name)
		none := strings.Replace(c.name, "sec", "zzz", 1)
		errNone := c.do(alice, none)
		if rpcCode(err) != gateway.CodeUnknownName || errorData(err).Reason != "unknown" {
			t.Errorf("alice (no access to sec): %s of %s: %v; want code %d, reason unknown", c.what, c.name, err, gateway.CodeUnknownName)
			continue
		}
		if d := errorData(err); !slices.Equal(d.Known, []string{"pub"}) || d.Server != "" {
			t.Errorf("alice: %s of %s: error data %+v; want known [pub] only, no server", c.what, c.name, d)
		}
		got, want := strings.ReplaceAll(err.Error(), c.name, "NAME"), strings.ReplaceAll(errNone.Error(), none, "NAME")
		if got != want || !slices.Equal(errorData(err).Known, errorData(errNone).Known) {
			t.Errorf("alice: %s of %s: %q; want what a server that does not exist gets: %q", c.what, c.name, got, want)
		}
		if strings.Contains(got, "sec") {
			t.Errorf("alice: %s of %s: the error names sec: %q", c.what, c.name, got)
		}
	}
	res, err := alice.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatalf("alice lists templates: %v", err)
	}
	var uris []string
	for _, rt := range res.ResourceTemplates {
		uris = append(uris, rt.URITemplate)
	}
	if !slices.Equal(uris, []string{"pub://item/{id}"}) {
		t.Errorf("alice lists templates %v; want pub's only", uris)
	}
	for _, m := range []string{"completion/complete", "resources/subscribe", "resources/unsubscribe", "resources/templates/list", "tools/call", "prompts/get", "resources/read"} {
		if n := sec.count(m); n != 0 {
			t.Errorf("sec received %d %s requests from a caller without access", n, m)
		}
	}

	// carol has access: served, and the unknown error names both servers.
	if got, err := complete(carol, &mcp.CompleteReference{Type: "ref/prompt", Name: "sec__sp"}); err != nil || got != "sec:a" {
		t.Errorf("carol completes sec__sp: %q, %v; want sec:a", got, err)
	}
	if got, err := complete(carol, &mcp.CompleteReference{Type: "ref/resource", URI: "sec://item/{id}"}); err != nil || got != "sec:a" {
		t.Errorf("carol completes sec://item/{id}: %q, %v; want sec:a", got, err)
	}
	if err := carol.Subscribe(ctx, &mcp.SubscribeParams{URI: "sec://doc"}); err != nil {
		t.Errorf("carol subscribes to sec://doc: %v", err)
	}
	if err := carol.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "sec://doc"}); err != nil {
		t.Errorf("carol unsubscribes from sec://doc: %v", err)
	}
	res, err = carol.ListResourceTemplates(ctx, nil)
	if err != nil || len(res.ResourceTemplates) != 2 {
		t.Errorf("carol lists templates: %+v, %v; want sec's and pub's", res, err)
	}
	for m, want := range map[string]int{"completion/complete": 2, "resources/subscribe": 1, "resources/unsubscribe": 1} {
		if n := sec.count(m); n != want {
			t.Errorf("sec received %d %s requests from carol; want %d", n, m, want)
		}
	}
	if n := sec.count("resources/templates/list"); n == 0 {
		t.Error("sec was never asked for its templates for carol")
	}
	_, err = complete(carol, &mcp.CompleteReference{Type: "ref/prompt", Name: "zzz__sp"})
	if d := errorData(err); !slices.Equal(d.Known, []string{"sec", "pub"}) {
		t.Errorf("carol's unknown name: %v (%+v); want known [sec pub]", err, d)
	}
}

// Completion, resources/subscribe and resources/unsubscribe count against
// the per-identity rate limit, as tools/call does: beyond it they are
// refused with rate_limited and never reach the server.
func TestRateLimitCoversEveryMethod(t *testing.T) {
	as := oauthtest.New(t)
	sec := newAccessPeer(t, "sec")
	srv := sec.server(t)
	srv.RateLimit = &gateway.RateLimit{Rate: 0.001, Burst: 2}
	gw, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{srv}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subscribe := func(uri string) func(cs *mcp.ClientSession) error {
		return func(cs *mcp.ClientSession) error { return cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}) }
	}
	cases := []struct {
		method string
		prep   func(cs *mcp.ClientSession) error // the first call, if not do
		do     func(cs *mcp.ClientSession) error
	}{
		{"completion/complete", nil, func(cs *mcp.ClientSession) error {
			_, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "sec__sp"}, Argument: mcp.CompleteParamsArgument{Name: "who"}})
			return err
		}},
		{"completion/complete", nil, func(cs *mcp.ClientSession) error {
			_, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "sec://item/{id}"}, Argument: mcp.CompleteParamsArgument{Name: "id"}})
			return err
		}},
		{"resources/subscribe", nil, subscribe("sec://item/1")},
		// Its own URI: the last subscriber's unsubscribe goes upstream.
		{"resources/unsubscribe", subscribe("sec://item/2"), func(cs *mcp.ClientSession) error {
			return cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "sec://item/2"})
		}},
	}
	for i, c := range cases {
		// An identity of its own: a bucket of two calls.
		cs := connectAs(t, url, as.Token(url, "user-"+string(rune('a'+i))))
		first := c.prep
		if first == nil {
			first = c.do
		}
		for j, f := range []func(*mcp.ClientSession) error{first, c.do} {
			if err := f(cs); err != nil {
				t.Fatalf("case %d (%s): call %d within the limit: %v", i, c.method, j, err)
			}
		}
		before := sec.count(c.method)
		if before == 0 {
			t.Errorf("case %d (%s): the calls within the limit never reached sec", i, c.method)
		}
		err := c.do(cs)
		if d := errorData(err); rpcCode(err) != gateway.CodeOverloaded || d.Reason != "rate_limited" || d.RetryAfterMs <= 0 {
			t.Errorf("case %d (%s): the call beyond the limit: %v (%+v); want code %d, rate_limited", i, c.method, err, d, gateway.CodeOverloaded)
		}
		if n := sec.count(c.method); n != before {
			t.Errorf("case %d (%s): sec received %d more after the refused call; want none", i, c.method, n-before)
		}
	}
	if n := gw.RateLimited("sec"); n != int64(len(cases)) {
		t.Errorf("RateLimited(sec) = %d; want %d", n, len(cases))
	}
}

// connectAsVersion opens a session of version to the gateway with token.
func connectAsVersion(t *testing.T, url, token, version string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer(token)}},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// Under 2026-07-28 a client subscribes with subscriptions/listen, whose
// subscribe and unsubscribe the SDK makes itself: the access rule holds
// for them too, by the listening caller's identity.
func TestAccessSubscriptionsListen(t *testing.T) {
	as := oauthtest.New(t)
	sec, pub := newAccessPeer(t, "sec"), newAccessPeer(t, "pub")
	srv := sec.server(t)
	srv.Access = gateway.Access{Subjects: []string{"admin-*"}}
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{srv, pub.server(t)}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	carol := connectAsVersion(t, url, as.Token(url, "admin-carol"), "2026-07-28")
	eventually(t, "the resources in the catalog", func() bool {
		res, err := carol.ListResources(ctx, nil)
		return err == nil && len(res.Resources) == 2
	})
	// The go-sdk client does not wait for a listen's answer: alice's is
	// read off the wire.
	if got := listen2026(t, ctx, url, as.Token(url, "alice"), "sec://doc"); !strings.Contains(got, `"code":-32044`) || !strings.Contains(got, `(servers: [pub])","data":{"reason":"unknown","known":["pub"]}`) {
		t.Errorf("alice (no access) listens to sec://doc: %s; want code %d", got, gateway.CodeUnknownName)
	}
	if n := sec.count("resources/subscribe"); n != 0 {
		t.Errorf("sec received %d subscribes for alice", n)
	}
	if err := carol.Subscribe(ctx, &mcp.SubscribeParams{URI: "sec://doc"}); err != nil {
		t.Fatalf("carol (access) listens to sec://doc: %v", err)
	}
	if n := sec.count("resources/subscribe"); n != 1 {
		t.Errorf("sec received %d subscribes for carol; want 1", n)
	}
	if err := carol.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "sec://doc"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the upstream unsubscribe when carol's listen ends", func() bool { return sec.count("resources/unsubscribe") == 1 })
}

// listen2026 sends subscriptions/listen for uri as a 2026-07-28 client
// does and returns the answer, which ends at once when the listen is
// refused.
func listen2026(t *testing.T, ctx context.Context, url, token, uri string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": map[string]any{
		"notifications": map[string]any{"resourceSubscriptions": []string{uri}},
		"_meta": map[string]any{
			mcp.MetaKeyProtocolVersion:    "2026-07-28",
			mcp.MetaKeyClientCapabilities: map[string]any{},
			mcp.MetaKeyClientInfo:         map[string]any{"name": "hand", "version": "1"},
		},
	}})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST subscriptions/listen: %v", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to subscriptions/listen: %v", err)
	}
	return string(out)
}

// The instructions a client reads when it connects name only the servers
// its caller may see, in both protocol eras.
func TestAccessInstructions(t *testing.T) {
	as := oauthtest.New(t)
	sec, pub := newAccessPeer(t, "sec"), newAccessPeer(t, "pub")
	secServer := sec.server(t)
	secServer.Access = gateway.Access{Subjects: []string{"admin-*"}}
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{secServer, pub.server(t)}})
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		alice := connectAsVersion(t, url, as.Token(url, "alice"), version).InitializeResult().Instructions
		carol := connectAsVersion(t, url, as.Token(url, "admin-carol"), version).InitializeResult().Instructions
		if strings.Contains(alice, "sec") || !strings.Contains(alice, "pub") {
			t.Errorf("%s: alice reads %q; want pub named and sec not", version, alice)
		}
		if !strings.Contains(carol, "sec") || !strings.Contains(carol, "pub") {
			t.Errorf("%s: carol reads %q; want both servers named", version, carol)
		}
	}
}

// The merged lists say whether a cache may share them between callers:
// "public" when every caller gets the same lists, "private" when a server
// with an access rule or a passthrough server makes them differ.
func TestListCacheScope(t *testing.T) {
	pub := newAccessPeer(t, "pub")
	for _, tc := range []struct {
		name    string
		servers []gateway.Server
		want    string
	}{
		{"shared only", []gateway.Server{pub.server(t)}, "public"},
		{"with a passthrough server", []gateway.Server{pub.server(t), {Name: "pt", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"X-User-Key"},
			Config: mcpool.Config{URL: pub.url}}}, "private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := startGateway(t, gateway.Options{Servers: tc.servers})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, version := range []string{"2025-11-25", "2026-07-28"} {
				cs := connect(t, url, version, nil)
				tools, err := cs.ListTools(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				prompts, err := cs.ListPrompts(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				resources, err := cs.ListResources(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				templates, err := cs.ListResourceTemplates(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				for list, got := range map[string]string{"tools": tools.CacheScope, "prompts": prompts.CacheScope,
					"resources": resources.CacheScope, "templates": templates.CacheScope} {
					if got != tc.want {
						t.Errorf("%s: %s list cacheScope %q; want %q", version, list, got, tc.want)
					}
				}
			}
		})
	}
}
