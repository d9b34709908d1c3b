package mcpool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawServer is a go-sdk server whose tools cover what a result can hold
// and what a server may send while it serves a call.
func rawServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "raw", Version: "1"},
		&mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}, Capabilities: &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}, Tools: &mcp.ToolCapabilities{}}})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Message string `json:"message"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message},
			&mcp.ImageContent{Data: []byte{1, 2, 3}, MIMEType: "image/png"}}}, nil, nil
	})
	type sum struct {
		Sum int `json:"sum"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "add"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct{ A, B int }) (*mcp.CallToolResult, sum, error) {
		return nil, sum{in.A + in.B}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, errors.New("the tool failed")
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "refuse"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "refused"}
	})
	// "chat" sends, in order, a log message, progress, a ping, and asks the
	// client for a sampled message, an elicited name and its roots; it answers
	// with what it was told.
	mcp.AddTool(srv, &mcp.Tool{Name: "chat"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ss := req.Session
		if err := ss.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "working"}); err != nil {
			return nil, nil, err
		}
		if tok := req.Params.GetProgressToken(); tok != nil {
			if err := ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2}); err != nil {
				return nil, nil, err
			}
		}
		if err := ss.Ping(ctx, nil); err != nil {
			return nil, nil, fmt.Errorf("ping: %w", err)
		}
		msg, err := ss.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
		if err != nil {
			return nil, nil, fmt.Errorf("sampling: %w", err)
		}
		el, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{
			"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, fmt.Errorf("elicitation: %w", err)
		}
		roots, err := ss.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("roots: %w", err)
		}
		name, _ := el.Content["name"].(string)
		out := fmt.Sprintf("%s|%s|%d", msg.Content.(*mcp.TextContent).Text, name, len(roots.Roots))
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out}}}, nil, nil
	})
	return srv
}

// idRecorder serves h and records the JSON-RPC ids of the tools/call
// requests posted to it.
type idRecorder struct {
	h   http.Handler
	mu  sync.Mutex
	ids []string
}

func (r *idRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodPost {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(body, &m) == nil && m.Method == "tools/call" {
			r.mu.Lock()
			r.ids = append(r.ids, string(m.ID))
			r.mu.Unlock()
		}
	}
	r.h.ServeHTTP(w, req)
}

// last returns the id of the last tools/call.
func (r *idRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return ""
	}
	return r.ids[len(r.ids)-1]
}

// rawHTTPServer serves srv over stateful streamable HTTP, recording call ids.
func rawHTTPServer(t *testing.T, srv *mcp.Server, opts *mcp.StreamableHTTPOptions) (string, *idRecorder) {
	t.Helper()
	rec := &idRecorder{h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts)}
	ts := httptest.NewServer(rec)
	t.Cleanup(func() { closeServer(ts, srv) })
	return ts.URL, rec
}

// callBoth calls params through the SDK's path and the raw path.
func callBoth(t *testing.T, p *mcpool.Pool, rec *idRecorder, params *mcp.CallToolParams) (sdk, raw *mcp.CallToolResult, rawJSON json.RawMessage, sdkErr, rawErr error) {
	t.Helper()
	sdk, sdkErr = p.CallTool(t.Context(), params)
	if id := rec.last(); strings.HasPrefix(id, `"mcpool-`) {
		t.Fatalf("a call without WithRawResult was sent raw (id %s)", id)
	}
	var r mcpool.RawResult
	raw, rawErr = p.CallTool(mcpool.WithRawResult(t.Context(), &r), params)
	if id := rec.last(); !strings.HasPrefix(id, `"mcpool-`) {
		t.Fatalf("a call with WithRawResult took the SDK's path (id %s)", id)
	}
	return sdk, raw, r.JSON, sdkErr, rawErr
}

// TestRawResultMatchesSDK: the raw result decodes to what the SDK's path
// returns, for content, structured content and a tool's own failure; the
// returned result carries IsError.
func TestRawResultMatchesSDK(t *testing.T) {
	url, rec := rawHTTPServer(t, rawServer(), nil)
	p := newPool(t, mcpool.Config{URL: url})
	for _, params := range []*mcp.CallToolParams{
		{Name: "echo", Arguments: map[string]any{"message": "héllo <&>"}},
		{Name: "add", Arguments: json.RawMessage(`{"A":2,"B":3}`)},
		{Name: "fail"},
	} {
		sdk, raw, js, err1, err2 := callBoth(t, p, rec, params)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v / %v", params.Name, err1, err2)
		}
		var decoded mcp.CallToolResult
		if err := json.Unmarshal(js, &decoded); err != nil {
			t.Fatalf("%s: the raw result does not decode: %v (%s)", params.Name, err, js)
		}
		if !reflect.DeepEqual(&decoded, sdk) {
			t.Errorf("%s: raw result %s decodes to %+v; the SDK's path gives %+v", params.Name, js, decoded, *sdk)
		}
		if raw.IsError != sdk.IsError {
			t.Errorf("%s: IsError %v, want %v", params.Name, raw.IsError, sdk.IsError)
		}
	}
}

// TestRawErrorsMatchSDK: the server's JSON-RPC errors come back as the
// SDK's path returns them.
func TestRawErrorsMatchSDK(t *testing.T) {
	url, rec := rawHTTPServer(t, rawServer(), nil)
	p := newPool(t, mcpool.Config{URL: url})
	for _, name := range []string{"refuse", "no-such-tool"} {
		_, _, js, err1, err2 := callBoth(t, p, rec, &mcp.CallToolParams{Name: name})
		var we1, we2 *jsonrpc.Error
		if !errors.As(err1, &we1) || !errors.As(err2, &we2) {
			t.Fatalf("%s: errors %v / %v, want JSON-RPC errors", name, err1, err2)
		}
		if err1.Error() != err2.Error() || we1.Code != we2.Code || js != nil {
			t.Errorf("%s: raw error %q (code %d, JSON %s), the SDK's %q (code %d)", name, err2, we2.Code, js, err1, we1.Code)
		}
	}
	if s := p.Stats(); s.Deaths != 0 {
		t.Errorf("%d sessions found dead after server errors, want none (the server answering proves the session)", s.Deaths)
	}
}

type callKey struct{}

// TestRawCallServerTraffic: what the server sends while serving a raw call
// reaches the pool's handlers with the call's context, notifications in
// order before the call returns, and the server gets the answers.
func TestRawCallServerTraffic(t *testing.T) {
	url, rec := rawHTTPServer(t, rawServer(), nil)
	var mu sync.Mutex
	var seen []string
	note := func(ctx context.Context, what string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s@%v", what, ctx.Value(callKey{})))
	}
	h := &mcpool.ClientHandlers{
		Relay: true,
		Log:   func(ctx context.Context, req *mcp.LoggingMessageRequest) { note(ctx, "log:"+req.Params.Data.(string)) },
		CreateMessage: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			note(ctx, "sampling")
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled"}}, nil
		},
		Elicitation: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			note(ctx, "elicitation")
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
		ListRoots: func(ctx context.Context, req *mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
			note(ctx, "roots")
			return &mcp.ListRootsResult{Roots: []*mcp.Root{{URI: "file:///a"}, {URI: "file:///b"}}}, nil
		},
	}
	p := newPool(t, mcpool.Config{URL: url, ClientHandlers: h, OnProgress: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
		note(ctx, fmt.Sprintf("progress:%v", req.Params.Progress))
	}})
	ctx := context.WithValue(t.Context(), callKey{}, "call-1")
	var r mcpool.RawResult
	res, err := p.CallTool(mcpool.WithRawResult(ctx, &r), &mcp.CallToolParams{Name: "chat", Meta: mcp.Meta{"progressToken": "tok"}})
	if err != nil {
		t.Fatal(err)
	}
	if id := rec.last(); !strings.HasPrefix(id, `"mcpool-`) {
		t.Fatalf("the call took the SDK's path (id %s)", id)
	}
	var decoded mcp.CallToolResult
	if err := json.Unmarshal(r.JSON, &decoded); err != nil || text(&decoded) != "sampled|Ada|2" || res.IsError {
		t.Fatalf("result %s (%v), want the answers sampled|Ada|2", r.JSON, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"log:working@call-1", "progress:1@call-1", "sampling@call-1", "elicitation@call-1", "roots@call-1"}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("the handlers saw %q, want %q (in order, before the call returned, with the call's context)", seen, want)
	}
}

// TestRawCallCancelled: a caller that gives up gets ctx's error at once and
// the server is told (notifications/cancelled): the tool's context ends.
func TestRawCallCancelled(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	started, stopped, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	mcp.AddTool(srv, &mcp.Tool{Name: "wait"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		close(started)
		select {
		case <-ctx.Done():
			close(stopped)
		case <-release: // the test failed: let the server close
		}
		return nil, nil, ctx.Err()
	})
	url, rec := rawHTTPServer(t, srv, nil)
	t.Cleanup(func() { close(release) })
	p := newPool(t, mcpool.Config{URL: url})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var r mcpool.RawResult
	go func() {
		_, err := p.CallTool(mcpool.WithRawResult(ctx, &r), &mcp.CallToolParams{Name: "wait"})
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v, want context.Canceled", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the server was not told that the call was cancelled")
	}
	if id := rec.last(); !strings.HasPrefix(id, `"mcpool-`) {
		t.Fatalf("the call took the SDK's path (id %s)", id)
	}
}

// TestRawCallSessionExpired: a 404 on a raw call is a session the server
// ended: the pool replaces it and the call runs on a new one.
func TestRawCallSessionExpired(t *testing.T) {
	srv := rawServer()
	url, rec := rawHTTPServer(t, srv, &mcp.StreamableHTTPOptions{SessionTimeout: 300 * time.Millisecond})
	p := newPool(t, mcpool.Config{URL: url, MaxSessions: 1, HealthCheckInterval: time.Hour})
	echo(t, t.Context(), p, "first")
	eventually(t, "the server to forget the session", func() bool {
		for range srv.Sessions() {
			return false
		}
		return true
	})
	var r mcpool.RawResult
	res, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "again"}})
	if err != nil || r.JSON == nil || res.IsError {
		t.Fatalf("call after the session expired: %v (result %s)", err, r.JSON)
	}
	if id := rec.last(); !strings.HasPrefix(id, `"mcpool-`) {
		t.Fatalf("the call took the SDK's path (id %s)", id)
	}
	if s := p.Stats(); s.Deaths == 0 {
		t.Errorf("stats %+v: the expired session was not counted dead", s)
	}
}

// TestRawResultOnlyWhereItCan: elsewhere the call takes the SDK's path and
// RawResult stays empty: an in-memory transport, and a stateless server
// (no session).
func TestRawResultOnlyWhereItCan(t *testing.T) {
	mem, _ := inMemory(rawServer())
	stateless := httpServer(t, rawServer(), true)
	for name, cfg := range map[string]mcpool.Config{
		"in-memory": {NewTransport: mem},
		"stateless": {URL: stateless},
	} {
		p := newPool(t, cfg)
		var r mcpool.RawResult
		res, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}})
		if err != nil || text(res) != "x" || r.JSON != nil {
			t.Errorf("%s: %v, %q, raw %s; want the SDK's result and no raw JSON", name, err, text(res), r.JSON)
		}
	}
}

// TestRawCallObserved: observers and the health score see a raw call as
// they see the SDK's.
func TestRawCallObserved(t *testing.T) {
	url, _ := rawHTTPServer(t, rawServer(), nil)
	p := newPool(t, mcpool.Config{URL: url})
	var mu sync.Mutex
	var got []string
	p.Observe(mcpool.Observer{RequestEnd: func(_ context.Context, e *mcpool.RequestEvent) {
		if e.Method != "tools/call" {
			return
		}
		r, _ := e.Result.(*mcp.CallToolResult)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %v %v", e.Name, r != nil && r.IsError, e.Err == nil))
		mu.Unlock()
	}})
	var r mcpool.RawResult
	if _, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "fail"}); err != nil || r.JSON == nil {
		t.Fatalf("fail: %v, raw %s", err, r.JSON)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"fail true true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// cuttingProxy forwards TCP connections to target and cuts a connection
// once the server has sent it mark: a stream broken mid-call.
func cuttingProxy(t *testing.T, target string, mark []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			wg.Go(func() {
				defer c.Close()
				defer s.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
						if bytes.Contains(buf[:n], mark) {
							return // cut both ways
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// TestRawCallResumesStream: a call's stream cut after an event with an id
// is resumed with Last-Event-ID (GET), and the call gets its result.
func TestRawCallResumesStream(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "resumable", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	resumed := make(chan struct{})
	var once sync.Once
	mcp.AddTool(srv, &mcp.Tool{Name: "step"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: 1}); err != nil {
			return nil, nil, err
		}
		select { // the answer comes once the client has resumed the stream
		case <-resumed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
			once.Do(func() { close(resumed) })
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, srv) })
	url := cuttingProxy(t, strings.TrimPrefix(ts.URL, "http://"), []byte("notifications/progress"))

	var progress atomic.Int64
	p := newPool(t, mcpool.Config{URL: url, OnProgress: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.Add(1) }})
	var r mcpool.RawResult
	res, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "step", Meta: mcp.Meta{"progressToken": "p"}})
	if err != nil || r.JSON == nil {
		t.Fatalf("call over a cut stream: %v (raw %s)", err, r.JSON)
	}
	var decoded mcp.CallToolResult
	if err := json.Unmarshal(r.JSON, &decoded); err != nil || text(&decoded) != "done" || res.IsError {
		t.Fatalf("result %s (%v), want done", r.JSON, err)
	}
	if progress.Load() != 1 {
		t.Errorf("progress notifications: %d, want 1 (the one before the cut, not replayed twice)", progress.Load())
	}
	select {
	case <-resumed:
	default:
		t.Error("the result came without the stream being resumed")
	}
}

// TestRawCallServerCancelsItsRequest: a server that cancels its own
// request (notifications/cancelled) ends the handler answering it, while
// the call goes on.
func TestRawCallServerCancelsItsRequest(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "asks", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	asked, ended := make(chan struct{}), make(chan struct{})
	mcp.AddTool(srv, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ectx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := req.Session.Elicit(ectx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object"}})
			errc <- err
		}()
		select {
		case <-asked:
		case <-ctx.Done():
			cancel()
			return nil, nil, ctx.Err()
		}
		cancel() // the server gives up on its question
		<-errc
		select { // and answers once the client's handler has stopped
		case <-ended:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "gave up asking"}}}, nil, nil
	})
	url, _ := rawHTTPServer(t, srv, nil)
	p := newPool(t, mcpool.Config{URL: url, ClientHandlers: &mcpool.ClientHandlers{Relay: true,
		Elicitation: func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			close(asked)
			<-ctx.Done() // a person who never answers
			close(ended)
			return nil, ctx.Err()
		}}})
	var r mcpool.RawResult
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := p.CallTool(mcpool.WithRawResult(ctx, &r), &mcp.CallToolParams{Name: "ask"}); err != nil || r.JSON == nil {
		t.Fatalf("call: %v (raw %s): the handler's context did not end when the server cancelled its request", err, r.JSON)
	}
}

// TestRawCallOddResults: a null result is an empty one, as the SDK decodes
// it; a result that is not an object is an error.
func TestRawCallOddResults(t *testing.T) {
	for body, wantErr := range map[string]bool{`null`: false, `42`: true} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			_ = json.NewDecoder(r.Body).Decode(&m)
			w.Header().Set("Mcp-Session-Id", "s1")
			w.Header().Set("Content-Type", "application/json")
			switch m.Method {
			case "initialize":
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"odd","version":"1"}}}`, m.ID)
			case "tools/call":
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, m.ID, body)
			case "":
				w.WriteHeader(http.StatusAccepted)
			default:
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, m.ID)
			}
		}))
		p := newPool(t, mcpool.Config{URL: ts.URL, ProtocolVersion: "2025-11-25"})
		var r mcpool.RawResult
		_, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "x"})
		if wantErr != (err != nil) || (!wantErr && string(r.JSON) != "{}") {
			t.Errorf("result %s: error %v, raw %s", body, err, r.JSON)
		}
		_ = p.Close(t.Context())
		ts.Close()
	}
}

// TestRawCallDoesNotWaitForHandlers: a call returns with its result even
// while a handler of the server's request is still running (as the SDK's
// calls do); the pool's Close waits for that handler.
func TestRawCallDoesNotWaitForHandlers(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "asks", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	asked := make(chan struct{})
	mcp.AddTool(srv, &mcp.Tool{Name: "ask-and-go"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ectx, cancel := context.WithCancel(ctx)
		go func() {
			<-asked // the client's handler runs: the server stops waiting for it
			cancel()
		}()
		_, _ = req.Session.Elicit(ectx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object"}})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "went on"}}}, nil, nil
	})
	url, _ := rawHTTPServer(t, srv, nil)
	release, handlerDone := make(chan struct{}), make(chan struct{})
	p, err := mcpool.New(mcpool.Config{URL: url, Logger: slog.New(slog.DiscardHandler), ClientHandlers: &mcpool.ClientHandlers{Relay: true,
		Elicitation: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			close(asked)
			<-release // ignores its context: a slow person
			close(handlerDone)
			return &mcp.ElicitResult{Action: "decline"}, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var r mcpool.RawResult
		_, err := p.CallTool(mcpool.WithRawResult(t.Context(), &r), &mcp.CallToolParams{Name: "ask-and-go"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("the call waited for the handler of the server's request")
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close(context.Background()) }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case <-handlerDone:
	default:
		t.Error("Close returned before the handler")
	}
}
