package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The relay's raw path (mcpool.WithRawResult): a plain tools/call on the
// fast path is sent upstream by the pool itself, as one POST whose
// JSON-RPC id is "mcpool-N", and the server's result object goes to the
// downstream client as it came. These tests run real go-sdk peers on both
// sides over loopback HTTP and tell the raw path from the SDK's by the ids
// the upstream server receives (the SDK's client numbers its requests).

// rpcLog records what a test's upstream server receives over HTTP: the
// tools/call requests (id as JSON, tool name) and the requestIds of
// notifications/cancelled.
type rpcLog struct {
	mu      sync.Mutex
	calls   []rpcCall
	cancels chan string // requestId (as JSON) of each notifications/cancelled
}

type rpcCall struct{ id, name string }

func newRPCLog() *rpcLog { return &rpcLog{cancels: make(chan string, 64)} }

// wrap returns h recording the POSTs it serves; the body reaches h intact.
func (l *rpcLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Body != nil {
			body, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params struct {
					Name      string          `json:"name"`
					RequestID json.RawMessage `json:"requestId"`
				} `json:"params"`
			}
			if json.Unmarshal(body, &m) == nil {
				switch m.Method {
				case "tools/call":
					l.mu.Lock()
					l.calls = append(l.calls, rpcCall{id: string(m.ID), name: m.Params.Name})
					l.mu.Unlock()
				case "notifications/cancelled":
					select {
					case l.cancels <- string(m.Params.RequestID):
					default:
					}
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// mark returns how many tools/call requests the server has received.
func (l *rpcLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// since returns the tools/call requests received after mark from.
func (l *rpcLog) since(from int) []rpcCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rpcCall(nil), l.calls[from:]...)
}

// rawID reports whether id (JSON) is one the pool's raw path sends.
func rawID(id string) bool {
	var s string
	return json.Unmarshal([]byte(id), &s) == nil && strings.HasPrefix(s, "mcpool-")
}

// expectPath checks that the server received n tools/call requests since
// from, all on the raw path (raw) or all on the SDK's.
func (l *rpcLog) expectPath(t *testing.T, from, n int, raw bool) []rpcCall {
	t.Helper()
	got := l.since(from)
	if len(got) != n {
		t.Errorf("the upstream received %d tools/call requests, want %d: %v", len(got), n, got)
	}
	for _, c := range got {
		if rawID(c.id) != raw {
			path := "the SDK's"
			if raw {
				path = "the raw"
			}
			t.Errorf("tools/call %s reached the upstream with id %s, not on %s path", c.name, c.id, path)
		}
	}
	return got
}

// rawPeer is a go-sdk server over streamable HTTP, served twice: at url
// through an rpcLog (for the gateway's pool) and at directURL as is (for
// direct clients, whose calls the log does not see).
type rawPeer struct {
	s         *mcp.Server
	log       *rpcLog
	url       string
	directURL string
	started   chan string // the tag of each slow call that began
	cancelled chan string // the tag of each slow call whose context ended
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	p := &rawPeer{log: newRPCLog(), started: make(chan string, 8), cancelled: make(chan string, 8)}
	// Tools without listChanged: a tool removed stays in the gateway's
	// catalog (TestRawRelayUpstreamErrors).
	s := mcp.NewServer(&mcp.Implementation{Name: "rawpeer", Version: "1"}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}, Tools: &mcp.ToolCapabilities{}},
	})
	type tagged struct {
		Tag string `json:"tag"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "text", Description: "Text content, with _meta of its own."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			Say string `json:"say"`
		}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Meta: mcp.Meta{"io.example/note": "kept"},
				Content: []mcp.Content{&mcp.TextContent{Text: "said " + in.Say + " <&> \u00e9\u2028"}}}, nil, nil
		})
	type sum struct {
		Sum   int      `json:"sum"`
		Parts []string `json:"parts"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "structured", Description: "Structured content."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			A int `json:"a"`
			B int `json:"b"`
		}) (*mcp.CallToolResult, sum, error) {
			return nil, sum{Sum: in.A + in.B, Parts: []string{fmt.Sprint(in.A), fmt.Sprint(in.B)}}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "toolerr", Description: "Fails as a tool: isError."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New("it failed <&>")
		})
	mcp.AddTool(s, &mcp.Tool{Name: "rpcerr", Description: "Fails with a JSON-RPC error."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, &jsonrpc.Error{Code: -32042, Message: "quota exhausted <&>", Data: json.RawMessage(`{"retry":false}`)}
		})
	mcp.AddTool(s, &mcp.Tool{Name: "gone", Description: "Removed after the catalog is read."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "still here"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Runs until its context ends."},
		func(ctx context.Context, req *mcp.CallToolRequest, in tagged) (*mcp.CallToolResult, any, error) {
			p.started <- in.Tag
			<-ctx.Done()
			p.cancelled <- in.Tag
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(s, &mcp.Tool{Name: "ask", Description: "Logs, then elicits a name."},
		func(ctx context.Context, req *mcp.CallToolRequest, in tagged) (*mcp.CallToolResult, any, error) {
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "asking " + in.Tag}); err != nil {
				return nil, nil, err
			}
			r, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
				Message: "name for " + in.Tag + "?",
				RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{
					"name": map[string]any{"type": "string"},
				}},
			})
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s:%v", r.Action, r.Content["name"])}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sample", Description: "Logs, then asks the client's model."},
		func(ctx context.Context, req *mcp.CallToolRequest, in tagged) (*mcp.CallToolResult, any, error) {
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "sampling " + in.Tag}); err != nil {
				return nil, nil, err
			}
			r, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
				Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "prompt " + in.Tag}}}})
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "model=" + r.Model}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	recorded := httptest.NewServer(p.log.wrap(h))
	direct := httptest.NewServer(h)
	t.Cleanup(func() {
		closePeer(s, recorded)
		direct.Close()
	})
	p.s, p.url, p.directURL = s, recorded.URL, direct.URL
	return p
}

// rawGateway serves url as server "up" in ModeShared through a pool set up
// as the gateway's command sets up a Group's (UpstreamHandlers,
// RelayHTTPClient), on 2025-11-25 sessions.
func rawGateway(t *testing.T, url string, opts gateway.Options, cfg mcpool.Config) (*gateway.Gateway, string) {
	t.Helper()
	var gw atomic.Pointer[gateway.Gateway]
	cfg.URL = url
	cfg.ProtocolVersion = "2025-11-25"
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, cfg.IdleConns())
	p := newPool(t, cfg)
	opts.Servers = []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}
	g, gwURL := startGateway(t, opts)
	gw.Store(g)
	return g, gwURL
}

// withoutServerInfo is r's exported fields (the SDK keeps the result type
// unexported) with _meta's serverInfo left out: a 2026-07-28 answer from
// the gateway compared with the upstream's 2025-11-25 one.
func withoutServerInfo(r *mcp.CallToolResult) *mcp.CallToolResult {
	out := &mcp.CallToolResult{Content: r.Content, StructuredContent: r.StructuredContent, IsError: r.IsError,
		InputRequests: r.InputRequests, RequestState: r.RequestState}
	for k, v := range r.Meta {
		if k == mcp.MetaKeyServerInfo {
			continue
		}
		if out.Meta == nil {
			out.Meta = mcp.Meta{}
		}
		out.Meta[k] = v
	}
	return out
}

// gatewayInfo is the serverInfo the gateway puts in its 2026-07-28 answers.
func gatewayInfo() mcp.Implementation {
	return mcp.Implementation{Name: "mcpool-gateway", Version: mcpool.Version}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// receive waits for want on ch, failing the test after limit (a bound on
// a failure, not a synchronisation).
func receive(t *testing.T, ch <-chan string, want string, limit time.Duration, what string) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var others []string
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
			others = append(others, got)
		case <-timer.C:
			t.Fatalf("%s: not within %v (got %q instead)", what, limit, others)
		}
	}
}

var rawCases = []struct {
	tool string
	args map[string]any
}{
	{"text", map[string]any{"say": "hi"}},
	{"structured", map[string]any{"a": 2, "b": 3}},
	{"toolerr", nil},
}

// A plain call takes the raw path from a 2025-11-25 session and from a
// 2026-07-28 stateless client, and the client decodes the very result a
// direct client of the server gets: text content (with the result's own
// _meta), structuredContent, isError. A 2026-07-28 answer also carries
// resultType "complete" and the gateway's serverInfo in _meta, the
// result's own _meta kept.
func TestRawRelayResultsAsDirect(t *testing.T) {
	peer := newRawPeer(t)
	gw, url := rawGateway(t, peer.url, gateway.Options{}, mcpool.Config{})
	direct := connect(t, peer.directURL, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	want := map[string]*mcp.CallToolResult{}
	for _, c := range rawCases {
		res, err := direct.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil {
			t.Fatalf("%s, called directly: %v", c.tool, err)
		}
		want[c.tool] = res
	}
	// The fixture is what the cases say it is.
	if want["structured"].StructuredContent == nil || !want["toolerr"].IsError || want["text"].Meta["io.example/note"] != "kept" {
		t.Fatalf("the upstream's results are not as the test expects: %s", asJSON(want))
	}

	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			cs := connect(t, url, version, nil)
			from, handled := peer.log.mark(), gateway.RelayHandled(gw)
			for _, c := range rawCases {
				got, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "up__" + c.tool, Arguments: c.args})
				if err != nil {
					t.Fatalf("%s through the gateway: %v", c.tool, err)
				}
				if version != "" {
					if !reflect.DeepEqual(got, want[c.tool]) {
						t.Errorf("%s through the gateway:\n got %s\nwant %s", c.tool, asJSON(got), asJSON(want[c.tool]))
					}
					continue
				}
				if info := asJSON(got.Meta[mcp.MetaKeyServerInfo]); info != asJSON(gatewayInfo()) {
					t.Errorf("%s: serverInfo %s, want the gateway's %s", c.tool, info, asJSON(gatewayInfo()))
				}
				if g, w := withoutServerInfo(got), withoutServerInfo(want[c.tool]); !reflect.DeepEqual(g, w) {
					t.Errorf("%s through the gateway:\n got %s\nwant %s", c.tool, asJSON(g), asJSON(w))
				}
			}
			if n := gateway.RelayHandled(gw) - handled; n != int64(len(rawCases)) {
				t.Errorf("the fast path served %d of %d calls", n, len(rawCases))
			}
			peer.log.expectPath(t, from, len(rawCases), true)
		})
	}

	// The 2026-07-28 answer on the wire.
	t.Run("wire", func(t *testing.T) {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr}
		for i, c := range rawCases {
			from, handled := peer.log.mark(), gateway.RelayHandled(gw)
			status, ct, body := post2026(t, ctx, hc, url, i+100, "up__"+c.tool, c.args)
			if status != http.StatusOK || ct != "application/json" {
				t.Fatalf("%s: status %d, Content-Type %q: %s", c.tool, status, ct, body)
			}
			if gateway.RelayHandled(gw) != handled+1 {
				t.Errorf("%s: the hand-made request did not take the fast path", c.tool)
			}
			peer.log.expectPath(t, from, 1, true)
			var resp struct {
				JSONRPC string                     `json:"jsonrpc"`
				ID      json.RawMessage            `json:"id"`
				Result  map[string]json.RawMessage `json:"result"`
				Error   *jsonrpc.Error             `json:"error"`
			}
			if err := json.Unmarshal(body, &resp); err != nil || resp.JSONRPC != "2.0" || string(resp.ID) != fmt.Sprint(i+100) || resp.Error != nil || resp.Result == nil {
				t.Fatalf("%s: not a JSON-RPC result for id %d (%v): %s", c.tool, i+100, err, body)
			}
			if rt := string(resp.Result["resultType"]); rt != `"complete"` {
				t.Errorf("%s: resultType %s, want \"complete\": %s", c.tool, rt, body)
			}
			var meta map[string]json.RawMessage
			if err := json.Unmarshal(resp.Result["_meta"], &meta); err != nil {
				t.Fatalf("%s: _meta %s: %v", c.tool, resp.Result["_meta"], err)
			}
			var info mcp.Implementation
			if err := json.Unmarshal(meta[mcp.MetaKeyServerInfo], &info); err != nil || !reflect.DeepEqual(info, gatewayInfo()) {
				t.Errorf("%s: serverInfo %s, want the gateway's %s", c.tool, meta[mcp.MetaKeyServerInfo], asJSON(gatewayInfo()))
			}
			if c.tool == "text" && string(meta["io.example/note"]) != `"kept"` {
				t.Errorf("text: the result's own _meta was lost: %s", resp.Result["_meta"])
			}
			raw, _ := json.Marshal(resp.Result)
			var got mcp.CallToolResult
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%s: the result does not decode: %v: %s", c.tool, err, raw)
			}
			if g, w := withoutServerInfo(&got), withoutServerInfo(want[c.tool]); !reflect.DeepEqual(g, w) {
				t.Errorf("%s on the wire:\n got %s\nwant %s", c.tool, asJSON(g), asJSON(w))
			}
		}
	})
}

// post2026 sends tools/call as a 2026-07-28 stateless client does, with
// the headers and _meta the fast path requires, and returns the answer.
func post2026(t *testing.T, ctx context.Context, hc *http.Client, url string, id int, name string, args map[string]any) (int, string, []byte) {
	t.Helper()
	params := map[string]any{
		"name": name,
		"_meta": map[string]any{
			mcp.MetaKeyProtocolVersion:    "2026-07-28",
			mcp.MetaKeyClientCapabilities: map[string]any{},
			mcp.MetaKeyClientInfo:         map[string]any{"name": "hand", "version": "1"},
		},
	}
	if args != nil {
		params["arguments"] = args
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", name)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", name, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to %s: %v", name, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// asker is a downstream client that answers elicitation and sampling with
// its own name and collects its log messages; a request or log message
// meant for another client is an error.
type asker struct {
	name string
	logs chan string
	cs   *mcp.ClientSession
}

func newAsker(t *testing.T, url, name string, logs int) *asker {
	t.Helper()
	a := &asker{name: name, logs: make(chan string, logs)}
	mine := func(s string) bool { return strings.Contains(s, " "+name+"-") }
	a.cs = connect(t, url, "2025-11-25", &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if !mine(req.Params.Message) {
				t.Errorf("client %s was asked %q, another client's elicitation", name, req.Params.Message)
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": name}}, nil
		},
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			var prompt string
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					prompt = tc.Text
				}
			}
			if !mine(prompt) {
				t.Errorf("client %s was asked to sample %q, another client's request", name, prompt)
			}
			return &mcp.CreateMessageResult{Model: "model-" + name, Role: "assistant", Content: &mcp.TextContent{Text: "ok"}}, nil
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			msg := fmt.Sprint(req.Params.Data)
			if !mine(msg) {
				t.Errorf("client %s got the log message %q, another client's", name, msg)
			}
			select {
			case a.logs <- msg:
			default:
				t.Errorf("client %s got more log messages than its calls sent: %q", name, msg)
			}
		},
	})
	return a
}

// While a raw-relayed call runs, what the upstream sends on its stream
// (a log message, then elicitation/create or sampling/createMessage) goes
// to the client whose call it is: two clients calling at once through one
// shared upstream session each get only their own requests and logs, and
// their answers go back to their own calls.
func TestRawRelayServerRequestsReachCaller(t *testing.T) {
	peer := newRawPeer(t)
	const rounds = 25
	_, url := rawGateway(t, peer.url, gateway.Options{}, mcpool.Config{MinSessions: 1, MaxSessions: 1, MaxCallsPerSession: 64})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	clients := []*asker{newAsker(t, url, "alice", 2*rounds), newAsker(t, url, "bob", 2*rounds)}
	for _, a := range clients {
		if err := a.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatalf("logging/setLevel through the gateway: %v", err)
		}
	}
	from := peer.log.mark()
	for i := range rounds {
		var wg sync.WaitGroup
		for _, a := range clients {
			tag := fmt.Sprintf("%s-%d", a.name, i)
			for tool, want := range map[string]string{"ask": "accept:" + a.name, "sample": "model=model-" + a.name} {
				wg.Go(func() {
					got, err := call(ctx, a.cs, "up__"+tool, map[string]any{"tag": tag})
					if err != nil || got != want {
						t.Errorf("%s %s: %q, %v; want %q", tool, tag, got, err, want)
					}
				})
			}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	peer.log.expectPath(t, from, 4*rounds, true)

	// Each client gets exactly its own log messages, one per call.
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for _, a := range clients {
		seen := map[string]bool{}
		for len(seen) < 2*rounds {
			select {
			case msg := <-a.logs:
				if seen[msg] {
					t.Errorf("client %s got %q twice", a.name, msg)
				}
				seen[msg] = true
			case <-timer.C:
				t.Fatalf("client %s got %d of its %d log messages", a.name, len(seen), 2*rounds)
			}
		}
		for i := range rounds {
			for _, verb := range []string{"asking", "sampling"} {
				if msg := fmt.Sprintf("%s %s-%d", verb, a.name, i); !seen[msg] {
					t.Errorf("client %s did not get %q", a.name, msg)
				}
			}
		}
	}
}

// A downstream client that gives up on a raw-relayed call ends the
// upstream tool's context: the gateway sends notifications/cancelled for
// the call's "mcpool-N" id. From a 2025-11-25 session the client's own
// notifications/cancelled ends the call; from a 2026-07-28 client, the end
// of its HTTP request.
func TestRawRelayCancellation(t *testing.T) {
	peer := newRawPeer(t)
	_, url := rawGateway(t, peer.url, gateway.Options{}, mcpool.Config{})
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			cs := connect(t, url, version, nil)
			tag := "v" + version
			from := peer.log.mark()
			cctx, ccancel := context.WithCancel(t.Context())
			defer ccancel()
			done := make(chan error, 1)
			go func() {
				_, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "up__slow", Arguments: map[string]any{"tag": tag}})
				done <- err
			}()
			receive(t, peer.started, tag, 20*time.Second, "the slow call starting upstream")
			calls := peer.log.expectPath(t, from, 1, true)
			if len(calls) != 1 {
				t.FailNow()
			}
			ccancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("the cancelled call returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled call did not return")
			}
			receive(t, peer.cancelled, tag, 5*time.Second, "the upstream tool's context ending")
			receive(t, peer.log.cancels, calls[0].id, 5*time.Second, "notifications/cancelled for "+calls[0].id+" upstream")
		})
	}
}

// An upstream JSON-RPC error on the raw path reaches the client with the
// code, message and data the SDK's path gives it (a call with a progress
// token takes the SDK's path: the fast path leaves it to the SDK): the
// pool's error passes through upstreamError unchanged, its message
// `calling "tools/call": ` and the server's, its code the server's. The
// cases: a tool handler's *jsonrpc.Error, and a tool the upstream removed
// after the gateway's catalog was read (the server's CodeInvalidParams).
func TestRawRelayUpstreamErrors(t *testing.T) {
	peer := newRawPeer(t)
	_, url := rawGateway(t, peer.url, gateway.Options{CatalogPoll: time.Hour}, mcpool.Config{})
	peer.s.RemoveTools("gone")
	direct := connect(t, peer.directURL, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cases := []struct {
		tool string
		code int64
		msg  string
	}{
		{"rpcerr", -32042, "quota exhausted <&>"},
		{"gone", jsonrpc.CodeInvalidParams, `unknown tool "gone"`},
	}
	for _, c := range cases {
		// The server's own answer.
		_, err := direct.CallTool(ctx, &mcp.CallToolParams{Name: c.tool})
		var de *jsonrpc.Error
		if !errors.As(err, &de) || de.Code != c.code || de.Message != c.msg {
			t.Fatalf("%s called directly: %v, want code %d %q", c.tool, err, c.code, c.msg)
		}
	}
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			cs := connect(t, url, version, nil)
			for _, c := range cases {
				from := peer.log.mark()
				_, rawErr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "up__" + c.tool})
				peer.log.expectPath(t, from, 1, true)

				from = peer.log.mark()
				p := &mcp.CallToolParams{Name: "up__" + c.tool}
				p.SetProgressToken("sdk-path")
				_, sdkErr := cs.CallTool(ctx, p)
				peer.log.expectPath(t, from, 1, false)

				var re, se *jsonrpc.Error
				if !errors.As(rawErr, &re) || !errors.As(sdkErr, &se) {
					t.Fatalf("%s: errors %v (raw path) and %v (SDK path), want JSON-RPC errors", c.tool, rawErr, sdkErr)
				}
				if re.Code != se.Code || re.Message != se.Message || !bytes.Equal(re.Data, se.Data) {
					t.Errorf("%s: the raw path gives code %d %q data %s; the SDK path code %d %q data %s",
						c.tool, re.Code, re.Message, re.Data, se.Code, se.Message, se.Data)
				}
				if wantMsg := `calling "tools/call": ` + c.msg; re.Code != c.code || re.Message != wantMsg {
					t.Errorf("%s: code %d %q, want code %d %q", c.tool, re.Code, re.Message, c.code, wantMsg)
				}
			}
		})
	}
}
