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
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/oauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listRequest posts a 2026-07-28 request of method with id to url as a
// go-sdk client would, and returns the answer's status, content type and
// body.
func listRequest(t *testing.T, url, method string, id int, header http.Header) (int, string, []byte) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":` + strings.TrimSpace(string(mustJSON(t, id))) + `,"method":"` + method + `","params":{"_meta":{` +
		`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"lists","version":"1"}}}}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// listedTools returns the tool names of a stateless tools/list answer.
func listedTools(t *testing.T, url string, id int, header http.Header) []string {
	t.Helper()
	status, _, body := listRequest(t, url, "tools/list", id, header)
	var resp struct {
		Result struct {
			Tools []struct{ Name string } `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &resp); status != http.StatusOK || err != nil {
		t.Fatalf("tools/list: %d %s (%v)", status, body, err)
	}
	var out []string
	for _, tl := range resp.Result.Tools {
		out = append(out, tl.Name)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A stateless list request is answered by the SDK once, then from the
// cache: the same result under each request's own id, for each of the
// methods kept.
func TestListCacheReplaysTheSDKsAnswer(t *testing.T) {
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: demoURL(t)}))}}})
	for _, method := range []string{"server/discover", "tools/list", "prompts/list", "resources/list"} {
		before := gateway.ListCacheHits(g)
		var first []byte
		for id := 1; id <= 3; id++ {
			status, ctype, body := listRequest(t, url, method, id, nil)
			if status != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
				t.Fatalf("%s #%d: %d %s %s; want 200 application/json", method, id, status, ctype, body)
			}
			var resp struct {
				ID     int             `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(body, &resp); err != nil || resp.ID != id || len(resp.Result) == 0 {
				t.Fatalf("%s #%d: answer %s (%v); want the result under id %d", method, id, body, err, id)
			}
			if first == nil {
				first = resp.Result
			} else if !bytes.Equal(resp.Result, first) {
				t.Errorf("%s #%d: result %s; want the first answer's %s", method, id, resp.Result, first)
			}
		}
		if hits := gateway.ListCacheHits(g) - before; hits != 2 {
			t.Errorf("%s: %d answers from the cache; want 2 (the first from the SDK)", method, hits)
		}
	}
	// A client that opens a session per call sees the same lists.
	for range 3 {
		cs := connect(t, url, "", nil)
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil || !slices.ContainsFunc(res.Tools, func(tl *mcp.Tool) bool { return tl.Name == "demo__echo" }) {
			t.Fatalf("tools/list: %v, %v; want demo__echo among them", res, err)
		}
		_ = cs.Close()
	}
}

// When an upstream's tools change, the next list request gets the new
// list, not a kept one.
func TestListCacheEndsWhenTheCatalogChanges(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "changing", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "first"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	var listed atomic.Int64 // the gateway's catalog polls reaching the server
	up.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				listed.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	t.Cleanup(func() { closePeer(up, ts) })
	pool := newPool(t, mcpool.Config{URL: ts.URL, ToolCacheTTL: -1})
	g, url := startGateway(t, gateway.Options{CatalogPoll: 20 * time.Millisecond, Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)}}})
	names := func(id int) []string { return listedTools(t, url, id, nil) }
	if got := names(1); !slices.Equal(got, []string{"up__first"}) {
		t.Fatalf("tools/list: %v; want [up__first]", got)
	}
	before := gateway.ListCacheHits(g)
	if got := names(2); !slices.Equal(got, []string{"up__first"}) || gateway.ListCacheHits(g) == before {
		t.Fatalf("tools/list again: %v, from the cache: %v; want [up__first] from the cache", got, gateway.ListCacheHits(g) != before)
	}
	// Polls that find nothing new keep the answer.
	polled := listed.Load()
	eventually(t, "two more catalog polls", func() bool { return listed.Load() >= polled+2 })
	before = gateway.ListCacheHits(g)
	if got := names(3); !slices.Equal(got, []string{"up__first"}) || gateway.ListCacheHits(g) == before {
		t.Fatalf("tools/list after polls without a change: %v, from the cache: %v; want [up__first] from the cache", got, gateway.ListCacheHits(g) != before)
	}
	mcp.AddTool(up, &mcp.Tool{Name: "second"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	id := 4
	eventually(t, "the new tool listed", func() bool {
		id++
		return slices.Equal(names(id), []string{"up__first", "up__second"})
	})
	before = gateway.ListCacheHits(g)
	if got := names(100); !slices.Equal(got, []string{"up__first", "up__second"}) || gateway.ListCacheHits(g) == before {
		t.Errorf("tools/list after the change, again: %v, from the cache: %v; want both tools, from the cache", got, gateway.ListCacheHits(g) != before)
	}
}

// Answers are kept per caller: an identity is never served another's list,
// and trace context does not split one caller's requests.
func TestListCacheKeysByCaller(t *testing.T) {
	as := oauthtest.New(t)
	pool := newPool(t, mcpool.Config{URL: newRecorder(t).url})
	g, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{
		{Name: "a", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)},
		{Name: "b", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool), Access: gateway.Access{Subjects: []string{"admin-*"}}},
	}})
	lists := func(token, trace string, id int) []string {
		h := http.Header{"Authorization": {"Bearer " + token}}
		if trace != "" {
			h.Set("Traceparent", trace)
		}
		return listedTools(t, url, id, h)
	}
	alice, carol := as.Token(url, "alice"), as.Token(url, "admin-carol")
	hasB := func(names []string) bool { return slices.Contains(names, "b__whoami") }
	if got := lists(alice, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 1); hasB(got) {
		t.Fatalf("alice lists %v; want none of b", got)
	}
	before := gateway.ListCacheHits(g)
	if got := lists(alice, "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", 2); hasB(got) || gateway.ListCacheHits(g) != before+1 {
		t.Fatalf("alice again, another span: %v, %d from the cache; want none of b, from the cache", got, gateway.ListCacheHits(g)-before)
	}
	if got := lists(carol, "", 3); !hasB(got) {
		t.Errorf("admin-carol lists %v; want b's tools (not alice's kept answer)", got)
	}
	if got := lists(alice, "", 4); hasB(got) {
		t.Errorf("alice after carol lists %v; want none of b", got)
	}
	// An expired or foreign token is refused before any kept answer.
	status, _, _ := listRequest(t, url, "tools/list", 5, http.Header{"Authorization": {"Bearer not-a-token"}})
	if status != http.StatusUnauthorized {
		t.Errorf("a bad token got %d; want 401", status)
	}
}
