package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// counterUpstream is a stateful HTTP server: count returns how many times
// it was called in the calling session. It records which upstream sessions
// served calls, and counts the DELETEs it gets.
type counterUpstream struct {
	url     string
	mu      sync.Mutex
	counts  map[string]int                // upstream session id -> calls
	byID    map[string]*mcp.ServerSession // for end
	deleted map[string]bool               // session ids DELETEd
}

func newCounterUpstream(t *testing.T) *counterUpstream {
	t.Helper()
	u := &counterUpstream{counts: map[string]int{}, byID: map[string]*mcp.ServerSession{}, deleted: map[string]bool{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "counter", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "count", Description: "Counts the calls of this session."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			u.mu.Lock()
			id := req.Session.ID()
			u.counts[id]++
			u.byID[id] = req.Session
			n := u.counts[id]
			u.mu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(n)}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		// Marked once the handler has ended the session: a test that
		// waits for the deletion then meets an ended session, never one
		// being ended under its call.
		if r.Method == http.MethodDelete {
			u.mu.Lock()
			u.deleted[r.Header.Get("Mcp-Session-Id")] = true
			u.mu.Unlock()
		}
	}))
	t.Cleanup(func() { closePeer(s, ts) })
	u.url = ts.URL
	return u
}

// served returns the upstream sessions that served calls.
func (u *counterUpstream) served() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for id := range u.counts {
		ids = append(ids, id)
	}
	return ids
}

// wasDeleted reports whether a client DELETEd the upstream session id.
func (u *counterUpstream) wasDeleted(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.deleted[id]
}

// end closes the upstream session id on the server's side: its later
// requests get 404.
func (u *counterUpstream) end(id string) {
	u.mu.Lock()
	ss := u.byID[id]
	u.mu.Unlock()
	_ = ss.Close()
}

func resumeReplicas(t *testing.T, n int, isolated mcpool.Config, spares int) []string {
	t.Helper()
	var urls []string
	for range n {
		_, u := startGateway(t, gateway.Options{
			Servers:     []gateway.Server{{Name: "iso", Mode: gateway.ModeIsolated, Config: isolated, Spares: spares}},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
	}
	return urls
}

// An isolated HTTP server's upstream session travels in the downstream
// session's id: a client whose requests alternate between two replicas
// keeps one upstream session, and its state, on both.
func TestResumeIsolatedAcrossReplicas(t *testing.T) {
	for _, spares := range []int{0, -1} { // a spare taken at initialize; a connect
		t.Run(fmt.Sprintf("spares=%d", spares), func(t *testing.T) {
			up := newCounterUpstream(t)
			b := &balancer{replicas: resumeReplicas(t, 2, mcpool.Config{URL: up.url}, spares)}
			cs := balancedClient(t, b, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := 1; i <= 20; i++ {
				got, err := call(ctx, cs, "iso__count", nil)
				if err != nil || got != fmt.Sprint(i) {
					t.Fatalf("call %d: %q, %v; want the session's count to continue across replicas", i, got, err)
				}
			}
			ids := up.served()
			if len(ids) != 1 {
				t.Fatalf("upstream sessions that served the calls: %v; want one", ids)
			}
			if up.wasDeleted(ids[0]) {
				t.Fatal("the upstream session was deleted while the downstream session lived")
			}
			// The client's DELETE ends it, whichever replica takes it.
			if err := cs.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			eventually(t, "the client's DELETE reaching the upstream session", func() bool { return up.wasDeleted(ids[0]) })
		})
	}
}

// When the upstream ends the session (404), calls from the downstream
// session get CodeSessionLost on every replica, never a fresh upstream
// session that silently lost the state.
func TestResumeIsolatedUpstreamGone(t *testing.T) {
	up := newCounterUpstream(t)
	b := &balancer{replicas: resumeReplicas(t, 2, mcpool.Config{URL: up.url, HealthCheckInterval: -1}, -1)}
	cs := balancedClient(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 4; i++ {
		if got, err := call(ctx, cs, "iso__count", nil); err != nil || got != fmt.Sprint(i) {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	ids := up.served()
	up.end(ids[0])
	lost := 0
	for i := range 6 { // three on each replica, the first of each meeting the 404
		_, err := call(ctx, cs, "iso__count", nil)
		if err == nil {
			t.Fatalf("call %d after the upstream ended the session succeeded", i)
		}
		if rpcCode(err) == gateway.CodeSessionLost {
			lost++
			if !strings.Contains(err.Error(), "start a new session") {
				t.Fatalf("session-lost error says no remedy: %v", err)
			}
		}
	}
	if lost != 6 {
		t.Fatalf("%d of 6 calls got CodeSessionLost; want all", lost)
	}
	if got := up.served(); len(got) != 1 {
		t.Fatalf("upstream sessions that served calls: %v; want the one only", got)
	}
}

// A client's DELETE ends the upstream session whichever replica takes it,
// even one that never served the session: the replica that did then finds
// it ended (CodeSessionLost) rather than serving a deleted session's state.
func TestResumeIsolatedDeleteAnywhere(t *testing.T) {
	up := newCounterUpstream(t)
	urls := resumeReplicas(t, 2, mcpool.Config{URL: up.url, HealthCheckInterval: -1}, -1)
	cs := balancedClient(t, &balancer{replicas: urls[:1]}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if got, err := call(ctx, cs, "iso__count", nil); err != nil || got != fmt.Sprint(i) {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, urls[1]+"/mcp", nil)
	req.Header.Set("Mcp-Session-Id", cs.ID())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE on the other replica: %d", resp.StatusCode)
	}
	eventually(t, "the upstream session deleted", func() bool { return up.wasDeleted(up.served()[0]) })
	// Without a shared store the first replica's copy of the session
	// lives on; its upstream session does not.
	if _, err := call(ctx, cs, "iso__count", nil); rpcCode(err) != gateway.CodeSessionLost {
		t.Fatalf("call after the DELETE: %v; want CodeSessionLost", err)
	}
}

// The replica that created the session goes away (its gateway closes, as
// in a deploy): the other carries on with the same upstream session.
func TestResumeIsolatedSurvivesReplicaLoss(t *testing.T) {
	up := newCounterUpstream(t)
	var (
		urls []string
		gws  []*gateway.Gateway
	)
	for range 2 {
		g, u := startGateway(t, gateway.Options{
			Servers:     []gateway.Server{{Name: "iso", Mode: gateway.ModeIsolated, Config: mcpool.Config{URL: up.url}}},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		urls, gws = append(urls, strings.TrimSuffix(u, "/mcp")), append(gws, g)
	}
	var lb switchable
	lb.to.Store(&balancer{replicas: urls})
	c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://balancer/mcp", HTTPClient: &http.Client{Transport: &lb}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	for i := 1; i <= 6; i++ {
		if got, err := call(ctx, cs, "iso__count", nil); err != nil || got != fmt.Sprint(i) {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	lb.to.Store(&balancer{replicas: urls[1:]})
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := gws[0].Close(cctx); err != nil {
		t.Fatalf("closing the first replica: %v", err)
	}
	for i := 7; i <= 12; i++ {
		if got, err := call(ctx, cs, "iso__count", nil); err != nil || got != fmt.Sprint(i) {
			t.Fatalf("call %d after the first replica closed: %q, %v", i, got, err)
		}
	}
	ids := up.served()
	if len(ids) != 1 {
		t.Fatalf("upstream sessions that served the calls: %v; want one", ids)
	}
	if up.wasDeleted(ids[0]) {
		t.Fatal("a replica closing deleted the session's upstream session")
	}
}

// switchable is a load balancer whose replicas the test changes.
type switchable struct{ to atomic.Pointer[balancer] }

func (s *switchable) RoundTrip(r *http.Request) (*http.Response, error) {
	return s.to.Load().RoundTrip(r)
}

// A session's id carries the upstream session of each isolated HTTP
// server, taken together at initialize.
func TestResumeIsolatedTwoServers(t *testing.T) {
	a, b := newCounterUpstream(t), newCounterUpstream(t)
	var urls []string
	for range 2 {
		_, u := startGateway(t, gateway.Options{
			Servers: []gateway.Server{
				{Name: "a", Mode: gateway.ModeIsolated, Config: mcpool.Config{URL: a.url}, Spares: -1},
				{Name: "b", Mode: gateway.ModeIsolated, Config: mcpool.Config{URL: b.url}, Spares: -1},
			},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
	}
	cs := balancedClient(t, &balancer{replicas: urls}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 8; i++ {
		for _, name := range []string{"a__count", "b__count"} {
			if got, err := call(ctx, cs, name, nil); err != nil || got != fmt.Sprint(i) {
				t.Fatalf("%s call %d: %q, %v", name, i, got, err)
			}
		}
	}
	if len(a.served()) != 1 || len(b.served()) != 1 {
		t.Fatalf("upstream sessions that served calls: %v and %v; want one each", a.served(), b.served())
	}
}
