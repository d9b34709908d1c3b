package mcpool_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func memPool(t *testing.T, cfg mcpool.Config) *mcpool.Pool {
	t.Helper()
	if cfg.NewTransport == nil && cfg.Command == nil && cfg.URL == "" {
		cfg.NewTransport, _ = inMemory(demoserver.New(demoserver.Options{}))
	}
	return newPool(t, cfg)
}

// Selection: a lone caller always gets the oldest session, so spare
// sessions go idle; concurrent calls take the session carrying the fewest
// (oldest on a tie), and once every session carries a call the pool
// connects another, up to MaxSessions, without making the caller wait;
// at MaxSessions calls pack evenly up to MaxCallsPerSession.
func TestAcquireSpreadsThenPacks(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{MinSessions: 1, MaxSessions: 2, MaxCallsPerSession: 3})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	acq := func(want uint64) mcpool.Lease {
		t.Helper()
		l, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want != 0 && l.SessionID() != want {
			t.Fatalf("lease on session %d, want %d (stats %+v)", l.SessionID(), want, p.Stats())
		}
		return l
	}
	for range 5 { // one caller at a time: the oldest session, nothing new
		l := acq(1)
		l.Release()
	}
	if st := p.Stats(); st.SessionsCreated != 1 {
		t.Fatalf("serial acquires connected %d sessions, want 1", st.SessionsCreated)
	}
	a := acq(1)
	b := acq(1) // every session carries a call: a second is connected, b does not wait
	eventually(t, "the second session", func() bool { return p.Stats().Sessions == 2 })
	c := acq(2) // the least loaded
	d := acq(2) // 2 on session 1, 1 on session 2
	e := acq(1) // a tie: the oldest
	f := acq(2)
	if st := p.Stats(); st.SessionsCreated != 2 || st.CallsInFlight != 6 || st.ActiveSessions != 2 {
		t.Fatalf("at MaxSessions: %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(wctx); !errors.Is(err, mcpool.ErrPoolExhausted) {
		t.Fatalf("acquire with every session full: %v, want ErrPoolExhausted", err)
	}
	for _, l := range []*mcpool.Lease{&a, &b, &c, &d, &e, &f} {
		l.Release()
	}
	g := acq(1) // all idle again: the oldest
	g.Release()
	if st := p.Stats(); st.CallsInFlight != 0 || st.IdleSessions != 2 || st.Acquires != 12 {
		t.Fatalf("after release: %+v", st)
	}
}

// Releasing twice, or through a stale copy, never frees room someone else holds.
func TestDoubleReleaseIsHarmless(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{MaxSessions: 1, MaxCallsPerSession: 1})
	a, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := a
	a.Release()
	a.Release()
	b, err := p.Acquire(ctx) // takes the only slot
	if err != nil {
		t.Fatal(err)
	}
	stale.Release() // a copy of the released lease: must not free b's slot
	if st := p.Stats(); st.CallsInFlight != 1 {
		t.Fatalf("stale release freed room: %+v", st)
	}
	var zero mcpool.Lease
	zero.Release()
	b.Release()
	if st := p.Stats(); st.CallsInFlight != 0 {
		t.Fatalf("calls in flight %d after release", st.CallsInFlight)
	}
}

// Waiters are served first in, first out.
func TestWaitersFIFO(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{MaxSessions: 1, MaxCallsPerSession: 1, AcquireTimeout: -1})
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			l.Release()
		})
		// Queue them one at a time so that arrival order is known.
		eventually(t, "waiter queued", func() bool { return p.Stats().Waiters == i+1 })
	}
	held.Release()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d served in place %d", got, want)
		}
		want++
	}
	if want != n {
		t.Fatalf("%d waiters served, want %d", want, n)
	}
}

func TestAcquireTimeout(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{MaxSessions: 1, MaxCallsPerSession: 1, AcquireTimeout: 50 * time.Millisecond})
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	start := time.Now()
	_, err = p.Acquire(ctx)
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("gave up after %v, before AcquireTimeout", waited)
	}
	mustIs(t, err, mcpool.ErrPoolExhausted)
	mustIs(t, err, context.DeadlineExceeded)
	var ex *mcpool.ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("%T is not *ExhaustedError", err)
	}
	if ex.Sessions != 1 || ex.MaxSessions != 1 || ex.CallsInFlight != 1 || ex.Waiters != 0 || ex.Waited < int64(50*time.Millisecond) {
		t.Fatalf("figures %+v", ex)
	}
	if st := p.Stats(); st.AcquireTimeouts != 1 || st.Waiters != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAcquireCancelledWhileWaiting(t *testing.T) {
	p := memPool(t, mcpool.Config{MaxSessions: 1, MaxCallsPerSession: 1, AcquireTimeout: -1})
	held, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := p.Acquire(ctx); errc <- err }()
	eventually(t, "waiter queued", func() bool { return p.Stats().Waiters == 1 })
	cancel()
	err = <-errc
	mustIs(t, err, context.Canceled)
	mustIs(t, err, mcpool.ErrPoolExhausted)
	if st := p.Stats(); st.Waiters != 0 {
		t.Fatalf("waiter left queued: %+v", st)
	}
	// The room freed later goes to a live caller, not the one that left.
	held.Release()
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// A caller that gives up while the session it needs is connecting does not
// waste the connect: the session joins the pool and serves the next caller.
func TestAcquireCancelledDuringConnect(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	mem, made := inMemory(srv)
	gate := make(chan struct{})
	p := newPool(t, mcpool.Config{NewTransport: func(ctx context.Context) (mcp.Transport, error) {
		<-gate
		return mem(ctx)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Acquire(ctx)
	mustIs(t, err, context.DeadlineExceeded)
	if st := p.Stats(); st.Connecting != 1 {
		t.Fatalf("connect not in flight after the caller left: %+v", st)
	}
	close(gate)
	eventually(t, "session joins the pool", func() bool { return p.Stats().Sessions == 1 })
	echo(t, context.Background(), p, "kept")
	if made.Load() != 1 {
		t.Fatalf("%d connects, want 1: the first was wasted", made.Load())
	}
}

// A failed connect is typed; after FailureThreshold failures in a row the
// breaker opens and acquires fail at once, wrapping the last cause.
func TestConnectFailureIsTyped(t *testing.T) {
	boom := errors.New("no server here")
	var attempts atomic.Int64
	p := newPool(t, mcpool.Config{
		NewTransport: func(context.Context) (mcp.Transport, error) {
			attempts.Add(1)
			return nil, boom
		},
		FailureThreshold: 3, BreakerOpenAfter: -1, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		BreakerCooldown: time.Hour,
	})
	// Start retries the (transient) failure until the breaker opens.
	err := p.Start(context.Background())
	mustIs(t, err, mcpool.ErrServerUnavailable)
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, boom)
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) || ce.Target != "custom transport" {
		t.Fatalf("want *ConnectError naming the target, got %#v", err)
	}
	_, err = p.Acquire(context.Background())
	mustIs(t, err, mcpool.ErrServerUnavailable)
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, boom)
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d connect attempts before the breaker opened, want 3", n)
	}
	// While open: at once, and no connect is attempted. The quickest of
	// five is timed: a loaded machine may deschedule one acquire for more
	// than 10ms, but an acquire that waited for a connect would be slow
	// every time.
	quickest := time.Hour
	for range 5 {
		start := time.Now()
		_, err = p.Acquire(context.Background())
		quickest = min(quickest, time.Since(start))
		mustIs(t, err, mcpool.ErrServerUnavailable)
	}
	if quickest > 10*time.Millisecond {
		t.Fatalf("Acquire with the breaker open took %v at the quickest", quickest)
	}
	if st := p.Stats(); st.ConnectErrors != 3 || st.Sessions != 0 || st.Waiters != 0 || attempts.Load() != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// Connection refused is transient: Start retries it until its ctx ends,
// then reports both the deadline and the cause.
func TestConnectRefusedOverHTTP(t *testing.T) {
	p := newPool(t, mcpool.Config{URL: "http://127.0.0.1:1/mcp", ConnectTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Start(ctx)
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, context.DeadlineExceeded)
	mustIs(t, err, syscall.ECONNREFUSED)
	if st := p.Stats(); st.ConnectErrors < 2 {
		t.Fatalf("Start gave up after %d connects, want retries: %+v", st.ConnectErrors, st)
	}
}

// Bursts of 500 concurrent callers: MaxSessions is never exceeded and no
// session ever carries more than MaxCallsPerSession calls, counted at the
// server. The per-session limit grows only as far as the server shows it
// pays (a starved machine may show that late), so bursts go on until the
// load has reached both caps, or 10 bursts have been made.
func TestCapsHoldUnderLoad(t *testing.T) {
	for _, tc := range []struct{ maxSessions, perSession int }{{4, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("sessions=%d,calls=%d", tc.maxSessions, tc.perSession), func(t *testing.T) {
			conc := newConcurrency()
			srv := demoserver.New(demoserver.Options{OnCall: conc.onCall})
			p := newPool(t, mcpool.Config{
				URL:         httpServer(t, srv, false),
				MaxSessions: tc.maxSessions, MaxCallsPerSession: tc.perSession,
				AcquireTimeout: -1,
			})
			const callers = 500
			bursts := 0
			for bursts < 10 {
				bursts++
				burstCalls(t, p, callers, tc.perSession > 1)
				maxPer, sessions := conc.figures()
				if sessions > tc.maxSessions || maxPer > tc.perSession {
					t.Fatalf("server saw %d sessions and up to %d calls on one; caps %d and %d",
						sessions, maxPer, tc.maxSessions, tc.perSession)
				}
				if sessions == tc.maxSessions && maxPer == tc.perSession {
					break
				}
			}
			// The load must have reached the caps to test them at all.
			if maxPer, sessions := conc.figures(); sessions != tc.maxSessions || maxPer != tc.perSession {
				t.Fatalf("load too light after %d bursts: %d sessions, %d calls per session", bursts, sessions, maxPer)
			}
			st := p.Stats()
			if st.Acquires != uint64(callers*bursts) || st.CallsInFlight != 0 || st.Waiters != 0 ||
				st.SessionsCreated != uint64(tc.maxSessions) || st.Errors != 0 {
				t.Fatalf("stats after %d bursts: %+v", bursts, st)
			}
		})
	}
}

// burstCalls makes n concurrent sleep calls of 1–3 ms on p (21–23 ms when
// long: calls that wait long enough for more calls per session to pay, as
// the per-session limit starts at one and grows only where it does).
func burstCalls(t *testing.T, p *mcpool.Pool, n int, long bool) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		ms := 1 + i%3
		if long {
			ms += 20
		}
		wg.Go(func() {
			if _, err := sleepCall(p, context.Background(), ms); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// methodRecorder counts JSON-RPC methods as they reach an HTTP server.
type methodRecorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (m *methodRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if meth := r.Header.Get("Mcp-Method"); meth != "" {
				m.add(meth)
			} else {
				m.add(peekMethod(r))
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (m *methodRecorder) add(meth string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[meth]++
}

func (m *methodRecorder) count(meth string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[meth]
}

// Once a session has negotiated a version, later sessions pin it and skip
// the server/discover probe.
func TestProtocolVersionIsRemembered(t *testing.T) {
	rec := &methodRecorder{}
	ts := httptest.NewServer(rec.wrap(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0)))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, MaxSessions: 3, MaxCallsPerSession: 1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().ProtocolVersion; got != "2025-11-25" {
		t.Fatalf("negotiated %q, want 2025-11-25 from a stateful go-sdk server", got)
	}
	probes := rec.count("server/discover")
	if probes != 1 {
		t.Fatalf("first connect sent %d server/discover, want 1", probes)
	}
	var leases []mcpool.Lease
	for range 3 { // forces two more sessions
		l, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for i := range leases {
		leases[i].Release()
	}
	if got := rec.count("server/discover"); got != probes {
		t.Fatalf("later sessions sent %d more server/discover", got-probes)
	}
	if got := rec.count("initialize"); got != 3 {
		t.Fatalf("%d initialize, want 3", got)
	}
}
