package mcpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// memServer is an in-memory go-sdk server whose server-side sessions the
// test can close abruptly, as a server that drops a session would.
type memServer struct {
	srv   *mcp.Server
	mu    sync.Mutex
	sess  []*mcp.ServerSession
	conns map[*mcp.ServerSession]mcp.Connection
	made  atomic.Int64
}

// rawTransport records the server side's connection so that a test can cut
// it as a crashing server would: no goodbye, calls in flight get EOF.
type rawTransport struct {
	mcp.Transport
	conn mcp.Connection
}

func (r *rawTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := r.Transport.Connect(ctx)
	r.conn = c
	return c, err
}

// dropSafeVersion is the protocol version of pools whose sessions a test
// closes from the server side (see drop).
const dropSafeVersion = "2025-11-25"

func newMemServer(opts demoserver.Options) *memServer {
	return &memServer{srv: demoserver.New(opts)}
}

func (m *memServer) transport(ctx context.Context) (mcp.Transport, error) {
	m.made.Add(1)
	ct, st := mcp.NewInMemoryTransports()
	rt := &rawTransport{Transport: st}
	ss, err := m.srv.Connect(ctx, rt, nil)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.sess = append(m.sess, ss)
	if m.conns == nil {
		m.conns = map[*mcp.ServerSession]mcp.Connection{}
	}
	m.conns[ss] = rt.conn
	m.mu.Unlock()
	return ct, nil
}

// cut closes the server side's connection under ss abruptly.
func (m *memServer) cut(ss *mcp.ServerSession) {
	m.mu.Lock()
	c := m.conns[ss]
	m.mu.Unlock()
	c.Close()
}

// drop closes the server side of the i-th session ever made. Pools whose
// sessions a test drops pin 2025-11-25 (dropSafeVersion): go-sdk v1.8.0's
// ServerSession.Close cancels the subscriptions/listen requests it knows of
// and then waits for every request in flight, so a 2026-07-28 listen that
// registers at that moment blocks Close for good.
func (m *memServer) drop(i int) {
	m.mu.Lock()
	ss := m.sess[i]
	m.mu.Unlock()
	ss.Close()
}

// A session whose server side goes away is replaced, and counted as a
// reconnect; the pool keeps MinSessions.
func TestDeadSessionIsReplaced(t *testing.T) {
	ms := newMemServer(demoserver.Options{})
	p := newPool(t, mcpool.Config{NewTransport: ms.transport, MinSessions: 2, BackoffInitial: time.Millisecond, ProtocolVersion: dropSafeVersion})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ms.drop(0)
	eventually(t, "the dead session replaced", func() bool {
		st := p.Stats()
		return st.Deaths == 1 && st.Reconnects == 1 && st.Sessions == 2
	})
	for range 10 {
		echo(t, ctx, p, "after")
	}
	if st := p.Stats(); st.SessionsCreated != 3 || st.SessionsDestroyed != 1 || st.Status != mcpool.StatusHealthy {
		t.Fatalf("stats %+v", st)
	}
}

// A session that died takes no new call, but the calls already running on
// it are not cancelled because another call on it failed.
func TestDeathDoesNotCancelOtherCalls(t *testing.T) {
	ms := newMemServer(demoserver.Options{})
	p := newPool(t, mcpool.Config{NewTransport: ms.transport, MaxSessions: 2, MaxCallsPerSession: 4})
	ctx := context.Background()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := l.SessionID()
	// A call made directly on the session runs on; a failing call through
	// the pool on the same session reports it dead.
	done := make(chan error, 1)
	go func() {
		_, err := l.Session().CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 200}})
		done <- err
	}()
	eventually(t, "the long call in flight", func() bool { return p.Stats().CallsInFlight == 1 })
	// Mark the session dead through a call error: Do with fn returning a
	// connection-closed error, as a call on a broken session would.
	err = p.Do(ctx, func(context.Context, *mcp.ClientSession) error {
		return mcp.ErrConnectionClosed
	})
	mustIs(t, err, mcp.ErrConnectionClosed)
	if st := p.Stats(); st.Deaths != 1 {
		t.Fatalf("session not marked dead: %+v", st)
	}
	l2, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l2.SessionID() == first {
		t.Fatal("a dead session took a new call")
	}
	l2.Release()
	if err := <-done; err != nil {
		t.Fatalf("the call in flight was cut: %v", err)
	}
	l.Release()
	eventually(t, "the dead session closed once idle", func() bool { return p.Stats().SessionsDestroyed == 1 })
}

// The health check finds a session whose server went away without a word
// (in memory the client notices at once, so drop a stateful HTTP session
// server-side instead: the client learns only by asking).
func TestHealthCheckReplacesExpiredHTTPSession(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	url := httpServerTimeout(t, srv, 100*time.Millisecond)
	p := newPool(t, mcpool.Config{URL: url, MinSessions: 1, HealthCheckInterval: 150 * time.Millisecond, PingTimeout: time.Second})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Idle past SessionTimeout: the server forgets the session; the next
	// probe gets 404 and the pool reconnects before any caller notices.
	eventually(t, "the probe replaces the session", func() bool {
		st := p.Stats()
		return st.ProbeFailures >= 1 && st.Reconnects >= 1 && st.Sessions == 1
	})
	echo(t, ctx, p, "fresh")
}

// A probe never touches a session with calls in flight.
func TestProbeSkipsBusySessions(t *testing.T) {
	var pings atomic.Int64
	srv := demoserver.New(demoserver.Options{})
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "ping" {
				pings.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxSessions: 1, HealthCheckInterval: 20 * time.Millisecond})
	ctx := context.Background()
	if _, err := sleepCall(p, ctx, 300); err != nil {
		t.Fatal(err)
	}
	if n := pings.Load(); n != 0 {
		t.Fatalf("%d pings while the only session was busy", n)
	}
	eventually(t, "a ping once idle", func() bool { return pings.Load() > 0 })
}

// ProbeOnAcquire: a session idle that long is pinged before it is handed
// out; a dead one is replaced and the caller still gets a working session.
func TestProbeOnAcquire(t *testing.T) {
	ms := newMemServer(demoserver.Options{})
	p := newPool(t, mcpool.Config{NewTransport: ms.transport, ProbeOnAcquire: time.Nanosecond, HealthCheckInterval: -1})
	ctx := context.Background()
	echo(t, ctx, p, "one")
	echo(t, ctx, p, "two")
	if st := p.Stats(); st.Probes < 1 {
		t.Fatalf("no probe on acquire: %+v", st)
	}
}

// MaxSessionLifetime: sessions are renewed, the replacement connects before
// the old one leaves, and no call in flight is cut.
func TestLifetimeRenewsWithoutCuttingCalls(t *testing.T) {
	ms := newMemServer(demoserver.Options{})
	p := newPool(t, mcpool.Config{
		NewTransport: ms.transport, MinSessions: 1, MaxSessions: 2, MaxCallsPerSession: 8,
		MaxSessionLifetime: 100 * time.Millisecond,
	})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Calls of 30ms back to back across several lifetimes.
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(500 * time.Millisecond)
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if _, err := sleepCall(p, ctx, 30); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			}
		})
	}
	// Meanwhile the pool never drops below MinSessions.
	for time.Now().Before(stop) {
		if st := p.Stats(); st.Sessions < 1 {
			t.Fatalf("gap: no session serving: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	st := p.Stats()
	if failed.Load() != 0 || st.Retired < 2 || st.Deaths != 0 {
		t.Fatalf("lifetimes: %d failed calls, stats %+v", failed.Load(), st)
	}
}

// MaxIdleTime retires sessions above MinSessions, never below.
func TestIdleSessionsRetire(t *testing.T) {
	ms := newMemServer(demoserver.Options{})
	p := newPool(t, mcpool.Config{
		NewTransport: ms.transport, MinSessions: 1, MaxSessions: 3, MaxCallsPerSession: 1,
		MaxIdleTime: 50 * time.Millisecond, AcquireTimeout: -1,
	})
	ctx := context.Background()
	var leases []mcpool.Lease
	for range 3 {
		l, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for i := range leases {
		leases[i].Release()
	}
	eventually(t, "idle sessions above MinSessions retired and closed", func() bool {
		st := p.Stats()
		return st.Sessions == 1 && st.Retired == 2 && st.SessionsDestroyed == 2
	})
}

// A tool with side effects is not retried when its session dies mid-call;
// the caller gets ErrSessionLost. WithRetry opts in.
func TestSessionLostIsTypedAndNotRetried(t *testing.T) {
	var runs atomic.Int64
	ms := newMemServer(demoserver.Options{})
	ms.srv.AddTool(&mcp.Tool{Name: "charge", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if runs.Add(1) == 1 {
				// The first run loses its session while running: the
				// server crashes before it answers.
				ms.cut(req.Session)
				<-ctx.Done()
			}
			return &mcp.CallToolResult{}, nil
		})
	p := newPool(t, mcpool.Config{NewTransport: ms.transport, BackoffInitial: time.Millisecond})
	ctx := context.Background()
	_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "charge"})
	mustIs(t, err, mcpool.ErrSessionLost)
	var sl *mcpool.SessionLostError
	if !errors.As(err, &sl) || sl.Tool != "charge" || !sl.MayHaveRun {
		t.Fatalf("want *SessionLostError that may have run, got %#v", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("a tool with side effects ran %d times", n)
	}
	// Opted in: retried once on a new session.
	runs.Store(0)
	if _, err := p.CallTool(mcpool.WithRetry(ctx), &mcp.CallToolParams{Name: "charge"}); err != nil {
		t.Fatalf("with WithRetry: %v", err)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("with WithRetry the tool ran %d times, want 2", n)
	}
	if st := p.Stats(); st.Retries != 1 || st.LostCalls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A read-only tool is retried on another session when its session dies.
func TestReadOnlyToolIsRetried(t *testing.T) {
	var runs atomic.Int64
	ms := newMemServer(demoserver.Options{})
	ms.srv.AddTool(&mcp.Tool{Name: "peek", InputSchema: map[string]any{"type": "object"}, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if runs.Add(1) == 1 {
				ms.cut(req.Session)
				<-ctx.Done()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	p := newPool(t, mcpool.Config{NewTransport: ms.transport, BackoffInitial: time.Millisecond})
	res, err := p.CallTool(context.Background(), &mcp.CallToolParams{Name: "peek"})
	if err != nil || text(res) != "ok" {
		t.Fatalf("read-only call not retried: %v", err)
	}
	if st := p.Stats(); st.Retries != 1 || runs.Load() != 2 {
		t.Fatalf("runs %d, stats %+v", runs.Load(), st)
	}
}
