package mcpool

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingWriter counts the increment tool's side effects.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(b []byte) (int, error) { w.n.Add(1); return len(b), nil }

func tokenTestServer(t *testing.T, effects *countingWriter) string {
	t.Helper()
	opts := demoserver.Options{}
	if effects != nil {
		opts.SideEffects = effects
	}
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(opts), false, 0))
	t.Cleanup(ts.Close)
	return ts.URL
}

// A TokenFunc that fails is the token source's trouble, not the server's
// 401: Start retries the connect with backoff instead of failing at once
// with the breaker open.
func TestTokenLookupFailureAtConnectIsRetried(t *testing.T) {
	url := tokenTestServer(t, nil)
	var lookups atomic.Int64
	p, err := New(Config{URL: url, Logger: slog.New(slog.DiscardHandler),
		Token: func(context.Context, bool) (string, error) {
			if lookups.Add(1) <= 2 {
				return "", errors.New("token endpoint: 503 Service Unavailable")
			}
			return "tok", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start after two failed token lookups: %v", err)
	}
	if n := lookups.Load(); n < 3 {
		t.Fatalf("token looked up %d times; want the failed lookups and a good one", n)
	}
	if st := p.Stats(); st.Sessions < 1 || st.Breaker != "closed" {
		t.Fatalf("after Start: %d sessions, breaker %s; want a session and the breaker closed", st.Sessions, st.Breaker)
	}
}

// A call whose token could not be had was never sent: it fails with
// ErrUnauthorized, not as a lost session that may have run, and its session
// stays in service (not suspect, not probed, not dead).
func TestTokenLookupFailureAtCallIsNotSentNorLost(t *testing.T) {
	effects := &countingWriter{}
	url := tokenTestServer(t, effects)
	var failing atomic.Bool
	p, err := New(Config{URL: url, Logger: slog.New(slog.DiscardHandler), MinSessions: 1, MaxSessions: 1,
		Token: func(context.Context, bool) (string, error) {
			if failing.Load() {
				return "", errors.New("token endpoint: 503 Service Unavailable")
			}
			return "tok", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	s := p.sessions[0]
	p.mu.Unlock()

	// The token keeps failing, so a probe, had one begun, could not
	// prove the session alive: the state checked below is settled.
	failing.Store(true)
	params := &mcp.CallToolParams{Name: "increment", Arguments: map[string]any{"id": "x"}}
	_, err = p.CallTool(ctx, params)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("CallTool with no token: %v; want ErrUnauthorized", err)
	}
	if n := strings.Count(err.Error(), "mcpool:"); n != 1 || !strings.HasPrefix(err.Error(), "mcpool: ") {
		t.Fatalf("%q: want one mcpool: prefix, at the start", err)
	}
	var lost *SessionLostError
	if errors.As(err, &lost) || errors.Is(err, ErrSessionLost) {
		t.Fatalf("CallTool with no token: %v; want not a lost session", err)
	}
	if got := CallOutcome(nil, err); got != OutcomeUnauthorized {
		t.Fatalf("CallOutcome = %q; want %q", got, OutcomeUnauthorized)
	}
	if n := effects.n.Load(); n != 0 {
		t.Fatalf("the tool ran %d times; the request was never sent", n)
	}
	p.mu.Lock()
	inPool := len(p.sessions) == 1 && p.sessions[0] == s
	suspect, probing, leaving := s.suspect, s.probing, s.leaving
	p.mu.Unlock()
	if !inPool || suspect || probing || leaving {
		t.Fatalf("session after a call with no token: in pool %v, suspect %v, probing %v, leaving %v; want it serving",
			inPool, suspect, probing, leaving)
	}
	if st := p.Stats(); st.Deaths != 0 {
		t.Fatalf("%d sessions died", st.Deaths)
	}

	failing.Store(false)
	if _, err := p.CallTool(ctx, params); err != nil {
		t.Fatalf("CallTool once the token is back: %v", err)
	}
	if n := effects.n.Load(); n != 1 {
		t.Fatalf("the tool ran %d times; want 1", n)
	}
}

// A health check whose ping could not be sent for want of a token judges
// nothing: the session is not marked dead while the token source is down.
func TestTokenLookupFailureDoesNotFailHealthChecks(t *testing.T) {
	url := tokenTestServer(t, nil)
	var failing atomic.Bool
	p, err := New(Config{URL: url, Logger: slog.New(slog.DiscardHandler), MinSessions: 1, MaxSessions: 1,
		HealthCheckInterval: 20 * time.Millisecond,
		Token: func(context.Context, bool) (string, error) {
			if failing.Load() {
				return "", errors.New("token endpoint: 503 Service Unavailable")
			}
			return "tok", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	defer failing.Store(false) // so that Close can delete the session
	probes := p.Stats().Probes
	// A second probe begins only once the first has ended, on a session
	// still in the pool.
	for p.Stats().Probes < probes+2 {
		if ctx.Err() != nil {
			t.Fatalf("no second health check while the token fails: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if st := p.Stats(); st.Deaths != 0 || st.ProbeFailures != 0 {
		t.Fatalf("health checks with no token: %d deaths, %d probe failures; want none", st.Deaths, st.ProbeFailures)
	}
}
