package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// slowConnects serves the gate server over HTTP; once armed, a request
// that opens a session (no Mcp-Session-Id) hangs until released or
// cancelled, counting itself in hanging.
type slowConnects struct {
	armed   atomic.Bool
	hanging atomic.Int64
	release chan struct{}
}

func (sc *slowConnects) url(t *testing.T, g *gate) string {
	t.Helper()
	s := g.server()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	sc.release = make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc.armed.Load() && r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == "" {
			sc.hanging.Add(1)
			defer sc.hanging.Add(-1)
			select {
			case <-sc.release:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// Status (and the status page) answers while an isolated session connects:
// no I/O runs under the lock it reads.
func TestStatusWhileIsolatedSessionConnects(t *testing.T) {
	g := newGate()
	sc := &slowConnects{}
	upURL := sc.url(t, g)
	cfg := mcpool.Config{URL: upURL, ConnectTimeout: 10 * time.Minute}
	gw, url := startGateway(t, gateway.Options{CallTimeout: 10 * time.Minute, Servers: []gateway.Server{
		{Name: "kv", Mode: gateway.ModeIsolated, Config: cfg, Spares: -1},
	}})
	sc.armed.Store(true)
	released := false
	defer func() {
		if !released {
			close(sc.release)
		}
	}()
	a := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	called := make(chan error, 1)
	go func() { _, err := call(ctx, a, "kv__get", map[string]any{}); called <- err }()
	eventually(t, "the isolated session connecting", func() bool { return sc.hanging.Load() == 1 })

	got := make(chan gateway.Status, 1)
	go func() { got <- gw.Status() }()
	select {
	case st := <-got:
		if sc.hanging.Load() != 1 {
			t.Errorf("Status returned only once the connect ended")
		}
		if st.IsolatedSessions != 1 {
			t.Errorf("IsolatedSessions = %d while one connects, want 1", st.IsolatedSessions)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Status blocked while an isolated session connects")
	}
	close(sc.release)
	released = true
	if err := <-called; err != nil {
		t.Fatalf("the call after the connect: %v", err)
	}
}

// MaxIsolatedSessions caps the isolated upstream sessions: at the cap a new
// downstream session takes the least recently used idle one, and is
// refused as overloaded when all are busy. Spares < 0 means none.
func TestMaxIsolatedSessions(t *testing.T) {
	g := newGate()
	defer g.release()
	upURL := g.url(t)
	catalog := newPool(t, mcpool.Config{URL: upURL})
	gw, url := startGateway(t, gateway.Options{MaxIsolatedSessions: 1, Servers: []gateway.Server{
		{Name: "kv", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(catalog), Config: mcpool.Config{URL: upURL}, Spares: -1},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := connect(t, url, "2025-11-25", nil)
	b := connect(t, url, "2025-11-25", nil)
	if _, err := call(ctx, a, "kv__set", map[string]any{"value": "a"}); err != nil {
		t.Fatal(err)
	}
	if st := gw.Status(); st.IsolatedSessions != 1 || st.MaxIsolatedSessions != 1 {
		t.Fatalf("isolated sessions %d of %d, want 1 of 1", st.IsolatedSessions, st.MaxIsolatedSessions)
	}
	// b takes a's idle upstream session; a's state goes with it.
	if got, err := call(ctx, b, "kv__get", map[string]any{}); err != nil || got != "value=" {
		t.Fatalf("b at the cap: %q, %v; want its own fresh session", got, err)
	}
	if st := gw.Status(); st.IsolatedSessions != 1 {
		t.Errorf("isolated sessions %d after an eviction, want 1", st.IsolatedSessions)
	}
	// While b's session is busy, a new one for a is refused.
	blocked := make(chan error, 1)
	go func() { _, err := call(ctx, b, "kv__block", map[string]any{}); blocked <- err }()
	eventually(t, "b's call running", func() bool { return g.running.Load() == 1 })
	_, err := call(ctx, a, "kv__get", map[string]any{})
	if rpcCode(err) != gateway.CodeOverloaded {
		t.Errorf("a at the cap with every session busy: %v, want CodeOverloaded", err)
	}
	if st := gw.Status(); st.Servers[0].Refused != 1 {
		t.Errorf("refused = %d, want 1", st.Servers[0].Refused)
	}
	g.release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	// Now idle again: a gets it back (a new one, a's old value gone).
	if got, err := call(ctx, a, "kv__get", map[string]any{}); err != nil || got != "value=" {
		t.Errorf("a after b's call ended: %q, %v", got, err)
	}
	_ = a.Close()
	eventually(t, "a's upstream session released", func() bool { return gw.Status().IsolatedSessions == 0 })
}
