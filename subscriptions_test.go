package mcpool_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const watchedURI = "test://watched"

// subServer is a go-sdk server over loopback HTTP that records, in order,
// the server sessions its subscribes and unsubscribes arrive on, and has a
// tool "block" that holds a call until release is closed. A go-sdk HTTP
// server speaks 2026-07-28 only when stateless.
type subServer struct {
	srv     *mcp.Server
	url     string
	blocked atomic.Int64
	release chan struct{}
	// down makes the server answer every request 503, as a server that
	// restarts does.
	down atomic.Bool

	// subGate, when set before the first subscribe, holds each subscribe
	// in the server's handler until it is closed; subEntered counts the
	// subscribes that reached the handler.
	subGate    chan struct{}
	subEntered atomic.Int64

	mu     sync.Mutex
	subs   []*mcp.ServerSession
	unsubs []*mcp.ServerSession
}

func newSubServer(t *testing.T, stateless bool) *subServer {
	t.Helper()
	s := &subServer{release: make(chan struct{})}
	s.srv = mcp.NewServer(&mcp.Implementation{Name: "watch", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler: func(ctx context.Context, req *mcp.SubscribeRequest) error {
			s.subEntered.Add(1)
			if s.subGate != nil {
				select {
				case <-s.subGate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			s.mu.Lock()
			s.subs = append(s.subs, req.Session)
			s.mu.Unlock()
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error {
			s.mu.Lock()
			s.unsubs = append(s.unsubs, req.Session)
			s.mu.Unlock()
			return nil
		},
	})
	s.srv.AddResource(&mcp.Resource{Name: "watched", URI: watchedURI}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: watchedURI, Text: "v"}}}, nil
	})
	mcp.AddTool(s.srv, &mcp.Tool{Name: "block"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		s.blocked.Add(1)
		defer s.blocked.Add(-1)
		select {
		case <-s.release:
		case <-ctx.Done():
		}
		return &mcp.CallToolResult{}, nil, nil
	})
	h := demoserver.Handler(s.srv, stateless, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, s.srv) })
	s.url = ts.URL
	return s
}

func (s *subServer) seen() (subs, unsubs []*mcp.ServerSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*mcp.ServerSession(nil), s.subs...), append([]*mcp.ServerSession(nil), s.unsubs...)
}

// hold runs a "block" call on p and returns once the server runs it; the
// call ends when the test closes s.release (done then closes).
func (s *subServer) hold(t *testing.T, p *mcpool.Pool) (done chan struct{}) {
	t.Helper()
	n := s.blocked.Load()
	done = make(chan struct{})
	go func() {
		defer close(done)
		_, _ = p.CallTool(context.Background(), &mcp.CallToolParams{Name: "block"})
	}()
	eventually(t, "the blocking call on the server", func() bool { return s.blocked.Load() > n })
	return done
}

// An unsubscribe goes to the session that took the subscribe, although
// selection would now pick another (the subscribing session carries a call).
// Under 2026-07-28 the subscribe is a subscriptions/listen and the
// unsubscribe its end (the server runs its subscribe and unsubscribe
// handlers as the listen opens and ends): on any other ClientSession it
// would do nothing.
func TestSubscribePinnedToSession(t *testing.T) {
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			s := newSubServer(t, version >= "2026-07-28")
			p := newPool(t, mcpool.Config{URL: s.url, MinSessions: 3, MaxSessions: 3, ProtocolVersion: version})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Do(ctx, func(_ context.Context, cs *mcp.ClientSession) error {
				if got := cs.InitializeResult().ProtocolVersion; got != version {
					t.Fatalf("the session speaks %s, want %s", got, version)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			eventually(t, "the subscribe upstream", func() bool { subs, _ := s.seen(); return len(subs) == 1 })
			// Again: one upstream subscription per URI per pool.
			if err := p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
				t.Fatalf("second Subscribe: %v", err)
			}
			// The idle oldest session took the subscribe; a call now
			// takes it too, so that selection would pick another.
			done := s.hold(t, p)
			defer func() { close(s.release); <-done }()
			if err := p.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
			eventually(t, "the unsubscribe upstream", func() bool { _, unsubs := s.seen(); return len(unsubs) == 1 })
			subs, unsubs := s.seen()
			if len(subs) != 1 {
				t.Errorf("the server saw %d subscribes, want 1", len(subs))
			}
			if unsubs[0] != subs[0] {
				t.Errorf("the unsubscribe reached another server session than the subscribe")
			}
			// Unknown, or already unsubscribed: nil.
			if err := p.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
				t.Errorf("second Unsubscribe: %v", err)
			}
		})
	}
}

// An Unsubscribe that arrives while its subscribe is still in flight
// wins: it waits for the subscribe, which is then undone on the session
// that took it, and the pool holds nothing afterwards (a new Subscribe
// subscribes again).
func TestUnsubscribeDuringSubscribe(t *testing.T) {
	s := newSubServer(t, false)
	s.subGate = make(chan struct{})
	p := newPool(t, mcpool.Config{URL: s.url, MinSessions: 1, MaxSessions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	subErr := make(chan error, 1)
	go func() { subErr <- p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}) }()
	eventually(t, "the subscribe in the server's handler", func() bool { return s.subEntered.Load() == 1 })
	unsubErr := make(chan error, 1)
	go func() { unsubErr <- p.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}) }()
	eventually(t, "the Unsubscribe waiting for the subscribe in flight", func() bool { return mcpool.UnsubscribeWaiting(p, watchedURI) })
	close(s.subGate)
	if err := <-subErr; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := <-unsubErr; err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	subs, unsubs := s.seen()
	if len(subs) != 1 || len(unsubs) != 1 || unsubs[0] != subs[0] {
		t.Fatalf("upstream saw %d subscribes and %d unsubscribes; want one of each, on the same session", len(subs), len(unsubs))
	}
	// Undone: the pool holds nothing, so a new Subscribe goes upstream.
	if err := p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Subscribe after the undone one: %v", err)
	}
	if subs, _ := s.seen(); len(subs) != 2 {
		t.Fatalf("upstream saw %d subscribes; want a second one after the first was undone", len(subs))
	}
}

// When the session holding a subscription goes away, the pool subscribes
// again on another session, and the server's updates reach
// ClientHandlers.ResourceUpdated.
func TestSubscriptionHeals(t *testing.T) {
	s := newSubServer(t, false)
	var updates atomic.Int64
	p := newPool(t, mcpool.Config{
		URL: s.url, MinSessions: 2, MaxSessions: 3, ProtocolVersion: dropSafeVersion,
		BackoffInitial: time.Millisecond, BackoffMax: 50 * time.Millisecond,
		ClientHandlers: &mcpool.ClientHandlers{ResourceUpdated: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { updates.Add(1) }},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	subs, _ := s.seen()
	if len(subs) != 1 {
		t.Fatalf("the server saw %d subscribes, want 1", len(subs))
	}
	first := subs[0]
	_ = first.Close()
	eventuallyWithin(t, 20*time.Second, "the subscribe again on another session", func() bool {
		subs, _ := s.seen()
		return len(subs) == 2 && subs[1] != first
	})
	if err := s.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: watchedURI}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update through the renewed subscription", func() bool { return updates.Load() == 1 })
	if err := p.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	subs, unsubs := s.seen()
	if len(unsubs) != 1 || unsubs[0] != subs[1] {
		t.Errorf("the unsubscribe did not reach the session holding the renewed subscription")
	}
}

// Unsubscribing a URI whose session died returns nil, and the pool does not
// subscribe it again afterwards.
func TestUnsubscribeAfterSessionDied(t *testing.T) {
	s := newSubServer(t, false)
	p := newPool(t, mcpool.Config{
		URL: s.url, MinSessions: 1, MaxSessions: 1, ProtocolVersion: dropSafeVersion,
		BackoffInitial: time.Millisecond, BackoffMax: 20 * time.Millisecond, FailureThreshold: -1,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	subs, _ := s.seen()
	// The server restarts: it forgets the session, and refuses new ones
	// until it is up, so that nothing can renew the subscription before
	// the Unsubscribe.
	s.down.Store(true)
	_ = subs[0].Close()
	eventually(t, "the session's death noticed", func() bool { return p.Stats().Deaths == 1 })
	if err := p.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Unsubscribe after the session died: %v", err)
	}
	s.down.Store(false)
	// A new session serves; a round trip on it, then no subscribe but the
	// first.
	if err := p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error { return cs.Ping(ctx, nil) }); err != nil {
		t.Fatal(err)
	}
	if subs, unsubs := s.seen(); len(subs) != 1 || len(unsubs) != 0 {
		t.Errorf("the server saw %d subscribes and %d unsubscribes, want 1 and 0", len(subs), len(unsubs))
	}
}

// A Group's server pins a subscription to the replica that took it: the
// unsubscribe goes there, although the lists' order would now pick another
// replica.
func TestGroupSubscriptionPinnedToReplica(t *testing.T) {
	a, b := newSubServer(t, false), newSubServer(t, false)
	a.down.Store(true) // the first replica is down as the subscribe comes
	cfg := func(url string) mcpool.Config {
		return mcpool.Config{URL: url, MinSessions: 1, MaxSessions: 2, FailureThreshold: -1,
			BackoffInitial: time.Millisecond, BackoffMax: 20 * time.Millisecond}
	}
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "watch", Balance: mcpool.Failover, Replicas: []mcpool.Config{cfg(a.url), cfg(b.url)},
	}}})
	gs := g.Server("watch")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gs.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if subs, _ := b.seen(); len(subs) != 1 {
		t.Fatalf("the second replica saw %d subscribes, want 1", len(subs))
	}
	a.down.Store(false)
	eventually(t, "the first replica back", func() bool { return gs.ServerStats().Sessions == 2 })
	if err := gs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	bsubs, bunsubs := b.seen()
	if len(bunsubs) != 1 || bunsubs[0] != bsubs[0] {
		t.Errorf("the unsubscribe did not reach the session of the second replica that took the subscribe")
	}
	if asubs, aunsubs := a.seen(); len(asubs)+len(aunsubs) != 0 {
		t.Errorf("the first replica saw %d subscribes and %d unsubscribes, want none", len(asubs), len(aunsubs))
	}
}
