package mcpool_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// One params value shared by concurrent calls on sessions of both protocol
// eras: the pool must not let the SDK write into it.
func TestCallToolParamsAreNotShared(t *testing.T) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "same"}}
	stateless, _ := inMemory(demoserver.New(demoserver.Options{}))         // negotiates 2026-07-28
	stateful := httpServer(t, demoserver.New(demoserver.Options{}), false) // negotiates 2025-11-25
	pools := []*mcpool.Pool{newPool(t, mcpool.Config{NewTransport: stateless}), newPool(t, mcpool.Config{URL: stateful})}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, err := pools[i%2].CallTool(ctx, params); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if params.Meta != nil {
		t.Fatalf("params.Meta written: %v", params.Meta)
	}
}

// Before: when a server restart broke a session, a tool with side effects
// still running on it was retired with the 404 of another call's request,
// taken as proof that it never ran, and run again.
func TestPendingCallIsNotRerunAfterRestart(t *testing.T) {
	var runs atomic.Int64
	started := make(chan struct{}, 1)
	finish := make(chan struct{}) // closing a server session waits for its handlers
	newServer := func() (*mcp.Server, http.Handler) {
		s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
		mcp.AddTool(s, &mcp.Tool{Name: "charge"}, func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if runs.Add(1) > 1 { // the side effect, run again: the bug
				return &mcp.CallToolResult{}, nil, nil
			}
			if tok := req.Params.GetProgressToken(); tok != nil {
				// Flushes the response stream: the client now knows the
				// server accepted the request.
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1})
			}
			select {
			case started <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
			case <-finish:
			}
			return &mcp.CallToolResult{}, nil, nil
		})
		mcp.AddTool(s, &mcp.Tool{Name: "echo", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		return s, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	}
	first, h := newServer()
	var cur atomic.Value
	cur.Store(h)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, ProtocolVersion: "2025-11-25", MinSessions: 1, MaxSessions: 2, HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "charge", Meta: mcp.Meta{"progressToken": "t1"}})
		errc <- err
	}()
	<-started
	// "Restart": a fresh server with no sessions; the old one's are gone.
	second, h2 := newServer()
	cur.Store(h2)
	ts.CloseClientConnections()
	// Another request on the same session now gets 404.
	_, _ = p.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
	err := <-errc
	if n := runs.Load(); n != 1 {
		t.Fatalf("a tool with side effects ran %d times (call error: %v)", n, err)
	}
	var sl *mcpool.SessionLostError
	if err != nil && (!errors.As(err, &sl) || !sl.MayHaveRun) {
		t.Fatalf("want nil or a SessionLostError that may have run, got %v", err)
	}
	close(finish)
	for _, s := range []*mcp.Server{first, second} {
		for ss := range s.Sessions() {
			ss.Close()
		}
	}
}

// limiter is a loopback HTTP server in front of the demo server that
// answers the next n tools/call POSTs with 429 and a Retry-After, and
// records when each tools/call arrived.
type limiter struct {
	mu         sync.Mutex
	n          int
	retryAfter string
	arrivals   []time.Time
	url        string
}

func newLimiter(t *testing.T) *limiter {
	t.Helper()
	srv := demoserver.New(demoserver.Options{})
	addFaultTools(srv, nil)
	next := demoserver.Handler(srv, false, 0)
	l := &limiter{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && peekMethod(r) == "tools/call" {
			l.mu.Lock()
			l.arrivals = append(l.arrivals, time.Now())
			limited := l.n > 0
			if limited {
				l.n--
				if l.retryAfter != "" {
					w.Header().Set("Retry-After", l.retryAfter)
				}
			}
			l.mu.Unlock()
			if limited {
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, srv) })
	l.url = ts.URL
	return l
}

func (l *limiter) limit(n int, retryAfter string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n, l.retryAfter, l.arrivals = n, retryAfter, nil
}

func (l *limiter) calls() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.arrivals...)
}

func rateLimitedPool(t *testing.T) (*limiter, *mcpool.Pool) {
	l := newLimiter(t)
	p := newPool(t, mcpool.Config{URL: l.url, HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	return l, p
}

func checkNotLost(t *testing.T, p *mcpool.Pool) {
	t.Helper()
	if st := p.Stats(); st.Deaths != 0 || st.LostCalls != 0 || st.Sessions != 1 {
		t.Errorf("a 429 cost a session or was counted lost: %+v", st)
	}
}

// A 429 with Retry-After is waited out within the caller's ctx and the
// call retried, even for a tool that is not safe to run twice: the
// refused request did not run.
func TestRateLimitedRetryWaitsRetryAfter(t *testing.T) {
	l, p := rateLimitedPool(t)
	l.limit(1, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "write"})
	if err != nil || text(res) != "ok" {
		t.Fatalf("call after a 429: %v %q", err, text(res))
	}
	calls := l.calls()
	if len(calls) != 2 {
		t.Fatalf("the server saw %d tools/call requests, want 2", len(calls))
	}
	if gap := calls[1].Sub(calls[0]); gap < time.Second {
		t.Fatalf("the retry came %v after the 429, before its Retry-After of 1s", gap)
	}
	checkNotLost(t, p)
}

// When the caller's ctx would end before Retry-After, the call fails at
// once with a RateLimitedError carrying it.
func TestRateLimitedFailsFastWhenCtxTooShort(t *testing.T) {
	l, p := rateLimitedPool(t)
	for _, c := range []struct {
		name, header string
		min, max     time.Duration
	}{
		{"seconds", "30", 30 * time.Second, 30 * time.Second},
		{"http-date", time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat), 15 * time.Second, 21 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			l.limit(1, c.header)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "read"})
			var rl *mcpool.RateLimitedError
			if !errors.As(err, &rl) {
				t.Fatalf("want a *RateLimitedError, got %T: %v", err, err)
			}
			mustIs(t, err, mcpool.ErrRateLimited)
			if errors.Is(err, mcpool.ErrSessionLost) {
				t.Errorf("a 429 reported as a lost session: %v", err)
			}
			if ctx.Err() != nil {
				t.Errorf("the call waited out its ctx instead of failing at once: %v", err)
			}
			if rl.RetryAfter < c.min || rl.RetryAfter > c.max || rl.Retried {
				t.Fatalf("RetryAfter %v (want %v..%v), Retried %v", rl.RetryAfter, c.min, c.max, rl.Retried)
			}
			if n := len(l.calls()); n != 1 {
				t.Fatalf("the server saw %d tools/call requests, want 1 (no retry)", n)
			}
			checkNotLost(t, p)
		})
	}
}

// Refused again after the wait: the RateLimitedError says it was retried.
func TestRateLimitedTwice(t *testing.T) {
	l, p := rateLimitedPool(t)
	l.limit(2, "")
	_, err := p.CallTool(context.Background(), &mcp.CallToolParams{Name: "read"})
	var rl *mcpool.RateLimitedError
	if !errors.As(err, &rl) || !rl.Retried || rl.RetryAfter != 0 {
		t.Fatalf("want a retried RateLimitedError without Retry-After, got %T: %v", err, err)
	}
	if n := len(l.calls()); n != 2 {
		t.Fatalf("the server saw %d tools/call requests, want 2", n)
	}
	checkNotLost(t, p)
}

// holdLostWithServer calls "hold" (read-only) on a pool of a replica whose
// breaker opens fast, kills the replica under the call and returns the
// call's error; listFirst reads the catalog (the tool's annotations)
// before the call.
func holdLostWithServer(t *testing.T, listFirst bool) (*mcpool.Pool, error) {
	t.Helper()
	r := startHoldReplica(t, true) // group_failover_test.go
	p := newPool(t, mcpool.Config{URL: r.url, BreakerOpenAfter: 100 * time.Millisecond, Logger: quiet})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if listFirst {
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "hold"})
		done <- err
	}()
	eventually(t, "the call running", func() bool { return r.count() == 1 })
	r.kill()
	return p, <-done
}

// A call lost with its server, whose tool's definition the pool never read
// and cannot read now, is not retried, and its error says why: not that
// the tool is unsafe to run twice (this one is read-only), but that the
// pool could not learn whether it is.
func TestLostCallUnknownAnnotationsSaysSo(t *testing.T) {
	_, err := holdLostWithServer(t, false)
	var lost *mcpool.SessionLostError
	if !errors.As(err, &lost) || !lost.MayHaveRun || lost.Retried {
		t.Fatalf("err = %v; want a SessionLostError, may have run, not retried", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "whether the tool is safe to run twice is unknown, its definition could not be read") ||
		strings.Contains(msg, "not marked read-only") {
		t.Errorf("error %q; want it to say the definition could not be read", msg)
	}
}

// A read-only call lost with its server, whose retry finds no session (the
// breaker opens), is a lost call: a *SessionLostError that says it may
// have run and was retried, and still matches the retry's error.
func TestLostCallRetryFindsNoSession(t *testing.T) {
	p, err := holdLostWithServer(t, true)
	var lost *mcpool.SessionLostError
	if !errors.As(err, &lost) || !lost.MayHaveRun || !lost.Retried || !errors.Is(err, mcpool.ErrServerUnavailable) {
		t.Fatalf("err = %v; want a SessionLostError, may have run, retried, matching ErrServerUnavailable", err)
	}
	if n := p.Stats().LostCalls; n != 1 {
		t.Errorf("LostCalls = %d; want 1", n)
	}
	if o := mcpool.CallOutcome(nil, err); o != mcpool.OutcomeLost {
		t.Errorf("CallOutcome = %q; want %q, as the metrics count it", o, mcpool.OutcomeLost)
	}
}
