package mcpool_test

// Issue 3, real faults over HTTP: sessions the server expires, and servers
// stopped and started again on the same port. The harness (faultLoad,
// faultTally, reliabilityLine) is in faults_kill_test.go.

import (
	"context"
	"fmt"
	"net"
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

// countInitialize counts the initialize requests srv receives: one per
// session made (or re-made) under the stateful protocol.
func countInitialize(srv *mcp.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "initialize" {
				n.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	return &n
}

func serverSessions(srv *mcp.Server) int {
	n := 0
	for range srv.Sessions() {
		n++
	}
	return n
}

// echoCall calls echo with a message unique to call i and checks the answer
// (prefix is what the server puts before the message: server-everything
// answers "Echo: m").
func echoCall(p *mcpool.Pool, prefix string) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		msg := fmt.Sprintf("m%d", i)
		res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
		if err == nil && (res.IsError || text(res) != prefix+msg) {
			return fmt.Errorf("echo returned %q (isError %v), want %q", text(res), res.IsError, prefix+msg)
		}
		return err
	}
}

// Sessions the server expires while the pool is idle: bursts of calls
// separated by idle gaps longer than the server's SessionTimeout. Health
// checks are off, so the calls themselves meet the 404s. Every read-only
// call succeeds (a call that meets a 404 never reached the tool and is
// retried), the expired sessions are replaced, and the server sees them
// re-initialize.
func TestFaultSessionExpiry(t *testing.T) {
	const timeout, bursts, burst = 200 * time.Millisecond, 5, 32
	srv := demoserver.New(demoserver.Options{})
	inits := countInitialize(srv)
	ts := httptest.NewServer(demoserver.Handler(srv, false, timeout))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{
		URL: ts.URL, MinSessions: 2, MaxSessions: 4, MaxCallsPerSession: 16,
		HealthCheckInterval: -1, BackoffInitial: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ft faultTally
	const deadline = 5 * time.Second
	for b := range bursts {
		// Idle until the server has forgotten every session of the pool.
		eventually(t, "the server expiring the idle sessions", func() bool { return serverSessions(srv) == 0 })
		var wg sync.WaitGroup
		for j := range burst {
			wg.Go(func() {
				i := b*burst + j
				cctx, cancel := context.WithTimeout(ctx, deadline)
				defer cancel()
				start := time.Now()
				err := echoCall(p, "")(cctx, i)
				ft.add(faultCall{i: i, start: start, end: time.Now(), kind: faultKind(err), err: err})
			})
		}
		wg.Wait()
	}
	longest := ft.check(t, deadline)
	n := ft.count()
	// The pool may still be replacing sessions the last burst found dead:
	// its figures and the server's count are compared once it is not.
	eventually(t, "the pool's connects to settle", func() bool { return p.Stats().Connecting == 0 })
	st := p.Stats()
	if n["ok"] != bursts*burst {
		t.Errorf("%d of %d read-only calls failed across expiries: %v", bursts*burst-n["ok"], bursts*burst, n)
		shown := 0
		for _, c := range ft.calls {
			if c.err != nil && shown < 5 {
				shown++
				t.Logf("call %d: %v", c.i, c.err)
			}
		}
	}
	// Every burst found its sessions expired: each needs new ones.
	if st.Reconnects < bursts || st.Deaths < bursts {
		t.Errorf("%d expiries, but reconnects=%d deaths=%d", bursts, st.Reconnects, st.Deaths)
	}
	// Every initialize the server saw is a session the pool made, or a
	// connect that failed after it (under load the server can expire a
	// session between initialize and notifications/initialized: the
	// connect fails, and counts in ConnectErrors).
	if got := inits.Load(); got < int64(st.SessionsCreated) || got > int64(st.SessionsCreated+st.ConnectErrors) || got <= int64(st.Reconnects) {
		t.Errorf("server saw %d initialize requests; pool created %d sessions (%d connects failed), %d reconnects", got, st.SessionsCreated, st.ConnectErrors, st.Reconnects)
	}
	t.Log(reliabilityLine("expiry/go-sdk-http", n, st, fmt.Sprintf("duplicated=- initializes=%d max_call=%s", inits.Load(), ms(longest))))
}

// restartable is an HTTP MCP server that can be stopped and started again
// on the same loopback port. Each start serves a new server process in
// effect: a new handler and a new go-sdk server, which knows none of the
// old sessions.
type restartable struct {
	t     *testing.T
	addr  string
	hs    *http.Server
	srv   *mcp.Server
	done  chan struct{}
	inits []*atomic.Int64 // initialize requests, per start
}

func (r *restartable) start() {
	r.t.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatalf("listen on %s again: %v", addr, err)
	}
	r.addr = l.Addr().String()
	srv := demoserver.New(demoserver.Options{})
	r.srv = srv
	r.inits = append(r.inits, countInitialize(srv))
	r.hs = &http.Server{Handler: demoserver.Handler(srv, false, 0)}
	r.done = make(chan struct{})
	go func(hs *http.Server, done chan struct{}) {
		defer close(done)
		_ = hs.Serve(l)
	}(r.hs, r.done)
}

// stop closes the listener and every connection at once, as a crash would.
func (r *restartable) stop() {
	_ = r.hs.Close()
	<-r.done
	// The crashed process's sessions would die with it; in this process
	// they must be closed by hand, or their goroutines outlive the test.
	for ss := range r.srv.Sessions() {
		_ = ss.Close()
	}
}

func (r *restartable) url() string { return "http://" + r.addr }

// restartRun drives callers through a server restart: calls succeed, the
// server goes down, calls fail (typed, within their deadlines), the server
// comes back on the same port, and calls succeed again on new sessions.
// Each phase ends on a state the calls reach, not after a fixed time.
type restartRun struct {
	name   string
	url    string
	prefix string // what echo puts before the message
	down   func() // stops the server
	up     func() // starts it again on the same port
}

func (r restartRun) do(t *testing.T) {
	t.Helper()
	const deadline = 2 * time.Second
	p := newPool(t, mcpool.Config{
		URL: r.url, MinSessions: 2, MaxSessions: 4, MaxCallsPerSession: 16,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		FailureThreshold: 3, BreakerOpenAfter: 200 * time.Millisecond, BreakerCooldown: 100 * time.Millisecond,
		HealthCheckInterval: 100 * time.Millisecond, PingTimeout: 500 * time.Millisecond,
		ConnectTimeout: time.Second,
	})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}

	var ft faultTally
	var okCount atomic.Int64
	stop := make(chan struct{})
	call := echoCall(p, r.prefix)
	load := faultLoad{callers: 16, gap: 5 * time.Millisecond, deadline: deadline, stop: stop,
		call: func(ctx context.Context, i int) error {
			err := call(ctx, i)
			if err == nil {
				okCount.Add(1)
			}
			return err
		}}
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		load.run(&ft)
	}()
	failures := func() int {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		n := 0
		for _, c := range ft.calls {
			if c.kind != "ok" {
				n++
			}
		}
		return n
	}

	eventually(t, "100 calls before the outage", func() bool { return okCount.Load() >= 100 })
	downAt := time.Now()
	r.down()
	// The outage lasts until calls have failed and the pool has given up on
	// its sessions and its connects have failed: it has noticed.
	// The outage lasts until calls have failed, the pool has dropped its
	// sessions, and its breaker has opened and failed a probe connect.
	eventually(t, "the pool noticing the outage", func() bool {
		st := p.Stats()
		return failures() >= 10 && st.Sessions == 0 && st.ConnectErrors >= 4 && st.Unavailable > 0
	})
	r.up()
	upAt := time.Now() // listening again
	okAtUp := okCount.Load()
	eventually(t, "100 calls after the restart", func() bool { return okCount.Load() >= okAtUp+100 })
	close(stop)
	<-loaded

	longest := ft.check(t, deadline)
	n := ft.count()
	// Phases: calls that ended before the outage all succeeded; the first
	// success of a call begun after the restart is the recovery; calls that
	// began 1s after it all succeeded.
	var recovered time.Time
	var outageKinds = map[string]int{}
	ft.mu.Lock()
	for _, c := range ft.calls {
		if c.start.After(upAt) && c.kind == "ok" && (recovered.IsZero() || c.end.Before(recovered)) {
			recovered = c.end
		}
	}
	lateFailures := 0
	for _, c := range ft.calls {
		switch {
		case c.end.Before(downAt) && c.kind != "ok":
			t.Errorf("call %d failed before the outage: %v", c.i, c.err)
		case c.start.After(recovered.Add(time.Second)) && c.kind != "ok":
			if lateFailures++; lateFailures <= 5 {
				t.Errorf("call %d failed 1s after recovery: %v", c.i, c.err)
			}
		case !c.start.Before(downAt) && c.kind != "ok":
			outageKinds[c.kind]++
		}
	}
	ft.mu.Unlock()
	if recovered.IsZero() {
		t.Fatal("no call succeeded after the restart")
	}

	// New sessions on the new server; the pool healthy again.
	eventually(t, "the pool healthy after the restart", func() bool {
		st := p.Stats()
		return st.Status == mcpool.StatusHealthy && st.Sessions >= 2
	})
	for i := range 20 {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		if err := call(cctx, 100000+i); err != nil {
			t.Errorf("call after the restart: %v", err)
		}
		cancel()
	}
	st := p.Stats()
	if st.Reconnects == 0 || st.Deaths == 0 {
		t.Errorf("after a restart reconnects=%d deaths=%d", st.Reconnects, st.Deaths)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := p.Stats(); st.SessionsCreated != st.SessionsDestroyed {
		t.Errorf("after Close: created %d, destroyed %d", st.SessionsCreated, st.SessionsDestroyed)
	}
	t.Log(reliabilityLine("restart/"+r.name, n, st, fmt.Sprintf(
		"duplicated=- outage=%s recover_after_up=%s outage_failures=%v breaker_opened=%v max_call=%s",
		ms(upAt.Sub(downAt)), ms(recovered.Sub(upAt)), outageKinds, st.Unavailable > 0, ms(longest))))
}

// A go-sdk HTTP server crashes (listener and connections closed at once)
// and comes back on the same port without its sessions.
func TestFaultRestartGoSDKHTTP(t *testing.T) {
	rs := &restartable{t: t}
	rs.start()
	t.Cleanup(func() { rs.stop() })
	restartRun{name: "go-sdk-http", url: rs.url(), down: rs.stop, up: rs.start}.do(t)
	if len(rs.inits) != 2 || rs.inits[1].Load() < 2 {
		t.Errorf("the restarted server saw %d initialize requests, want MinSessions at least", rs.inits[1].Load())
	}
}

// server-everything over HTTP is killed (SIGKILL) and a new process starts
// on the same port; it answers the old sessions with 400 "No valid session
// ID", which the pool treats as a dead session.
func TestFaultRestartEverythingHTTP(t *testing.T) {
	port := freePort(t)
	kill := everythingOnPort(t, port)
	r := restartRun{
		name: "everything-http", url: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), prefix: "Echo: ",
		down: func() { kill() },
		up:   func() { kill = everythingOnPort(t, port) },
	}
	r.do(t)
	if left := children(t, "server-everything"); len(left) != 1 {
		t.Errorf("want the one running server-everything, have children %v", left)
	}
}

// Minimal case of the expiry failure: the server forgets every idle
// session at once (go-sdk SessionTimeout), health checks are off, and one
// read-only call comes. Its first session answers 404 and is replaced; the
// one retry lands on the pool's other session, just as expired, and the
// call fails with ErrSessionLost although the tool is read-only and
// neither attempt reached it (both 404s prove it).
func TestFaultRetryAfterExpiryFindsLiveSession(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(srv, false, 100*time.Millisecond))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, MinSessions: 2, HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	echo(t, ctx, p, "warm") // the tool catalog is cached: echo is read-only
	eventually(t, "the server expiring both sessions", func() bool { return serverSessions(srv) == 0 })
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := p.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "after expiry"}})
	if err != nil {
		t.Fatalf("read-only call after the server expired every session: %v (stats %+v)", err, p.Stats())
	}
	if text(res) != "after expiry" {
		t.Fatalf("echo returned %q", text(res))
	}
}

// Minimal case of the untyped outage errors: a session's server goes down
// (health checks off, so the pool has not noticed yet) and a call comes.
// Its POST is refused ("connect: connection refused"): the pool must
// answer with a typed error (ErrSessionLost, ErrServerUnavailable,
// ErrConnectFailed…), not the raw transport error. (Without keep-alives
// every POST dials, so the refusal is certain; with them, a POST on a
// kept-alive connection the server closed gets EOF, which the pool already
// handles, and only calls that dial meet the refusal, as under load.)
func TestFaultServerDownErrorIsTyped(t *testing.T) {
	rs := &restartable{t: t}
	rs.start()
	t.Cleanup(func() { rs.stop() })
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	p := newPool(t, mcpool.Config{URL: rs.url(), MinSessions: 1, HealthCheckInterval: -1, HTTPClient: hc,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	echo(t, ctx, p, "warm")
	rs.stop()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "down"}})
	if err == nil {
		t.Fatal("a call succeeded with the server down")
	}
	if d := time.Since(start); d > 2*time.Second+faultSlack {
		t.Errorf("the call took %v, past its 2s deadline", d)
	}
	if kind := faultKind(err); kind == "lost" {
		t.Errorf("server down: untyped error (%T): %v", err, err)
	}
	rs.start() // same port: Close can DELETE (404: the new server never knew the session)
}
