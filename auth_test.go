package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// Before: a 401 on a call (a revoked token, no refresh possible) came back
// as an untyped "Unauthorized" or a SessionLostError that may have run.
func TestUnauthorizedCallIsTyped(t *testing.T) {
	var revoked atomic.Bool
	h := demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if revoked.Load() && r.Method == http.MethodPost {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, BearerToken: "tok", HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}})
	mustIs(t, err, mcpool.ErrUnauthorized)
	revoked.Store(false) // let Close delete the session
}

// headerServer is a go-sdk server whose "seen" tool returns the headers
// its call's HTTP request carried, as the server saw them.
func headerServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "seen", InputSchema: map[string]any{"type": "object"}, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h := req.Extra.Header
			out := h.Get("X-Identity") + "|" + h.Get("X-Call") + "|" + h.Get("Authorization") + "|" + h.Get("X-Static")
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out}}}, nil
		})
	srv.AddTool(&mcp.Tool{Name: "tool-of-" + name, InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	return srv
}

// 10,000 calls from 16 identities with per-call headers, multiplexed over
// a few shared sessions: every call's request carries its own headers and
// no other call's.
func TestPerCallHeadersNeverCross(t *testing.T) {
	srv := headerServer("shared")
	var sessions sync.Map // Mcp-Session-Id values seen
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Mcp-Session-Id"); id != "" {
			sessions.Store(id, true)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{
		URL: ts.URL, MaxSessions: 4, MaxCallsPerSession: 8,
		Headers: http.Header{"X-Static": {"s"}}, AcquireTimeout: time.Minute,
		Logger: slog.New(slog.DiscardHandler),
	})
	const identities, perIdentity = 16, 625 // 10,000 calls
	var mismatches, done atomic.Int64
	var wg sync.WaitGroup
	for id := range identities {
		wg.Go(func() {
			identity := fmt.Sprintf("user-%02d", id)
			base := mcpool.WithHeaders(context.Background(), http.Header{"X-Identity": {identity}})
			for n := range perIdentity {
				call := fmt.Sprintf("%s-%d", identity, n)
				ctx := mcpool.WithHeaders(base, http.Header{"X-Call": {call}})
				res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "seen"})
				if err != nil {
					t.Error(err)
					return
				}
				if got, want := text(res), identity+"|"+call+"||s"; got != want {
					mismatches.Add(1)
					t.Errorf("call %s: server saw %q", call, got)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	n := 0
	sessions.Range(func(any, any) bool { n++; return true })
	if done.Load() != identities*perIdentity || mismatches.Load() != 0 || n == 0 || n > 4 {
		t.Fatalf("%d calls, %d mismatches, over %d server sessions", done.Load(), mismatches.Load(), n)
	}
	t.Logf("%d calls from %d identities over %d shared sessions: %d mismatches", done.Load(), identities, n, mismatches.Load())
}

// tokenServer accepts only the current token and records what it saw.
type tokenServer struct {
	mu       sync.Mutex
	valid    string
	also     string // a second token accepted, to let pools close
	seen     []string
	rejected int
}

func (s *tokenServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		got := r.Header.Get("Authorization")
		s.seen = append(s.seen, got)
		ok := got == "Bearer "+s.valid || (s.also != "" && got == "Bearer "+s.also)
		if !ok {
			s.rejected++
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *tokenServer) set(tok string) {
	s.mu.Lock()
	s.valid = tok
	s.seen = nil
	s.mu.Unlock()
}

func (s *tokenServer) snapshot() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen), s.rejected
}

// A token rotated mid-run reaches the live sessions at once; a 401 makes
// the pool refresh the token once and retry the request.
func TestTokenRotation(t *testing.T) {
	ts := &tokenServer{valid: "token-A"}
	srv := httptest.NewServer(ts.wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return headerServer("tok") }, nil)))
	t.Cleanup(srv.Close)
	var current atomic.Value
	current.Store("token-A")
	var refreshes atomic.Int64
	p := newPool(t, mcpool.Config{
		URL: srv.URL, MinSessions: 2, MaxSessions: 2,
		Token: func(ctx context.Context, refresh bool) (string, error) {
			if refresh {
				refreshes.Add(1)
			}
			return current.Load().(string), nil
		},
	})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "seen"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		call()
	}
	// Rotate: client and server agree on B from now on.
	current.Store("token-B")
	ts.set("token-B")
	for range 20 {
		call()
	}
	seen, rejected := ts.snapshot()
	for _, a := range seen {
		if a != "Bearer token-B" {
			t.Fatalf("a request after the rotation carried %q", a)
		}
	}
	if rejected != 0 || len(seen) < 20 {
		t.Fatalf("%d requests after rotation, %d rejected", len(seen), rejected)
	}
	// The server rotates first: the pool's next request gets 401, the pool
	// asks for a fresh token and retries; the caller sees nothing.
	ts.set("token-C")
	current.Store("token-C")
	// Make the pool's token stale again to force the 401 path: the server
	// moves on to D, and the token source hands out D only when refreshing.
	ts.set("token-D")
	var stale atomic.Bool
	stale.Store(true)
	p2 := newPool(t, mcpool.Config{
		URL: srv.URL, MaxSessions: 1,
		Token: func(ctx context.Context, refresh bool) (string, error) {
			if refresh {
				refreshes.Add(1)
				stale.Store(false)
			}
			if stale.Load() {
				return "token-C", nil
			}
			return "token-D", nil
		},
	})
	if _, err := p2.CallTool(ctx, &mcp.CallToolParams{Name: "seen"}); err != nil {
		t.Fatalf("after a 401 and a refresh: %v", err)
	}
	if refreshes.Load() != 1 {
		t.Fatalf("%d refreshes, want 1", refreshes.Load())
	}
	if st := p.Stats(); st.SessionsCreated != 2 {
		t.Fatalf("rotation made new sessions: %+v", st)
	}
	// Let the first pool's sessions be deleted when the test closes it.
	ts.mu.Lock()
	ts.also = "token-C"
	ts.mu.Unlock()
}

// A bad token is a typed error at connect, and the token is in no error,
// log line or Stats, even at debug level.
func TestCredentialsNeverLeak(t *testing.T) {
	const secret = "s3cr3t-T0KEN-value"
	const identity = "alice@example.com-key-9f8e"
	ts := &tokenServer{valid: "something-else"}
	srv := httptest.NewServer(ts.wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return headerServer("x") }, nil)))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	p := newPool(t, mcpool.Config{URL: srv.URL, BearerToken: secret, Logger: logger, FailureThreshold: 1})
	err := p.Start(context.Background())
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, mcpool.ErrUnauthorized)
	_, aerr := p.Acquire(context.Background())

	k, kerr := mcpool.NewKeyed(mcpool.KeyedConfig{
		Config: mcpool.Config{URL: srv.URL, Logger: logger, FailureThreshold: 1},
		ForIdentity: func(id string, cfg *mcpool.Config) error {
			cfg.BearerToken = secret + id
			return nil
		},
	})
	if kerr != nil {
		t.Fatal(kerr)
	}
	_, cerr := k.CallTool(context.Background(), identity, &mcp.CallToolParams{Name: "seen"})
	if cerr == nil {
		t.Fatal("a call with a rejected token succeeded")
	}
	kst := k.Stats()
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	all := logs.String()
	logMu.Unlock()
	for what, s := range map[string]string{
		"Start error": err.Error(), "Acquire error": fmt.Sprint(aerr), "keyed error": cerr.Error(),
		"logs": all, "stats": fmt.Sprintf("%+v", p.Stats()), "keyed stats": fmt.Sprintf("%+v", kst),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, identity) {
			t.Errorf("%s contain a credential or identity:\n%s", what, s)
		}
	}
	if !strings.Contains(all, "connect failed") {
		t.Fatalf("the log captured nothing useful: %q", all)
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Identities get their own sessions and catalogs; the least recently used
// idle identity is evicted at the cap; busy ones never are.
func TestKeyedPartitions(t *testing.T) {
	// The server is chosen per session by token: each identity sees its own
	// tool, as a multi-tenant gateway would show.
	var tokensPerSession sync.Map // session id -> token
	var crossed atomic.Int64
	inner := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		return headerServer(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok-"))
	}, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Mcp-Session-Id"); id != "" {
			if prev, loaded := tokensPerSession.LoadOrStore(id, r.Header.Get("Authorization")); loaded && prev != r.Header.Get("Authorization") {
				crossed.Add(1)
			}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	k, err := mcpool.NewKeyed(mcpool.KeyedConfig{
		Config:        mcpool.Config{URL: srv.URL, MaxSessions: 2, Logger: slog.New(slog.DiscardHandler)},
		MaxIdentities: 3,
		ForIdentity: func(id string, cfg *mcpool.Config) error {
			cfg.BearerToken = "tok-" + id
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(context.Background()) })
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b", "c"} {
		wg.Go(func() {
			for range 50 {
				if _, err := k.CallTool(ctx, id, &mcp.CallToolParams{Name: "seen"}); err != nil {
					t.Error(err)
					return
				}
			}
			tools, err := k.ListTools(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			names := toolNames(tools)
			if !slices.Contains(names, "tool-of-"+id) || len(names) != 2 {
				t.Errorf("identity %s sees tools %v", id, names)
			}
		})
	}
	wg.Wait()
	if crossed.Load() != 0 {
		t.Fatalf("%d requests on a session carried another identity's token", crossed.Load())
	}
	if st := k.Stats(); st.Identities != 3 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// "a" is the least recently used idle identity: "d" evicts it.
	if _, err := k.CallTool(ctx, "b", &mcp.CallToolParams{Name: "seen"}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.CallTool(ctx, "c", &mcp.CallToolParams{Name: "seen"}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.CallTool(ctx, "d", &mcp.CallToolParams{Name: "seen"}); err != nil {
		t.Fatal(err)
	}
	if st := k.Stats(); st.Identities != 3 || st.Evicted != 1 {
		t.Fatalf("after a fourth identity: %+v", st)
	}
	// Every identity busy: a new one is refused, typed.
	hold := make(chan struct{})
	held := make(chan struct{}, 3)
	for _, id := range []string{"b", "c", "d"} {
		wg.Go(func() {
			_ = k.With(ctx, id, func(ctx context.Context, p *mcpool.Pool) error {
				held <- struct{}{}
				<-hold
				return nil
			})
		})
	}
	for range 3 {
		<-held
	}
	_, err = k.CallTool(ctx, "e", &mcp.CallToolParams{Name: "seen"})
	close(hold)
	wg.Wait()
	if !errors.Is(err, mcpool.ErrTooManyIdentities) {
		t.Fatalf("with every identity busy: %v", err)
	}
}

// staticOAuth is an OAuthHandler whose flow has already run: it hands out
// one token. It stands for the SDK's own handlers, which the pool passes
// through to the streamable transport untouched.
type staticOAuth struct{ authorized atomic.Int64 }

func (h *staticOAuth) TokenSource(context.Context) (oauth2.TokenSource, error) {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "oauth-token"}), nil
}

func (h *staticOAuth) Authorize(context.Context, *http.Request, *http.Response) error {
	h.authorized.Add(1)
	return nil
}

func TestOAuthHandlerPassesThrough(t *testing.T) {
	ts := &tokenServer{valid: "oauth-token"}
	srv := httptest.NewServer(ts.wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return headerServer("o") }, nil)))
	t.Cleanup(srv.Close)
	h := &staticOAuth{}
	p := newPool(t, mcpool.Config{URL: srv.URL, OAuthHandler: h})
	res, err := p.CallTool(context.Background(), &mcp.CallToolParams{Name: "seen"})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(res); got != "||Bearer oauth-token|" {
		t.Fatalf("server saw %q", got)
	}
	if _, rejected := ts.snapshot(); rejected != 0 || h.authorized.Load() != 0 {
		t.Fatalf("%d requests rejected, %d authorizations", rejected, h.authorized.Load())
	}
	// TokenSourceFunc adapts an oauth2.TokenSource for Config.Token.
	p2 := newPool(t, mcpool.Config{URL: srv.URL, Token: mcpool.TokenSourceFunc(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "oauth-token"}))})
	if _, err := p2.CallTool(context.Background(), &mcp.CallToolParams{Name: "seen"}); err != nil {
		t.Fatal(err)
	}
}
