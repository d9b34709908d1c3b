package mcpool_test

// Restarts are not outages: with default settings a server that restarts,
// or stdio children killed again and again, cost callers latency, not
// errors; a server gone for good still gets fail-fast errors once the
// breaker's window has passed; Start rides out a server that comes up late
// and fails at once on what retrying cannot cure.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// restartDeadline bounds each call of the restart tests: generous, as a
// caller with the default AcquireTimeout (30s) would wait.
const restartDeadline = 20 * time.Second

// A go-sdk server over loopback HTTP is stopped (listener and connections
// closed, as a crash does) and started again on the same port, three
// times, while 16 callers call a read-only tool. With default settings
// every call succeeds: the callers wait while the pool reconnects, and the
// breaker never opens. (Before, five refused connects within a second
// opened the breaker and every call failed for its 5s cool-down.)
func TestRestartCostsLatencyNotErrors(t *testing.T) {
	rs := &restartable{t: t}
	rs.start()
	t.Cleanup(func() { rs.stop() })
	p := newPool(t, mcpool.Config{URL: rs.url()})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ListTools(ctx); err != nil { // echo is read-only: the catalog says so
		t.Fatal(err)
	}
	var ft faultTally
	var ok atomic.Int64
	stop := make(chan struct{})
	call := echoCall(p, "")
	load := faultLoad{callers: 16, gap: 2 * time.Millisecond, deadline: restartDeadline, stop: stop,
		call: func(ctx context.Context, i int) error {
			err := call(ctx, i)
			if err == nil {
				ok.Add(1)
			}
			return err
		}}
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		load.run(&ft)
	}()
	const restarts = 3
	var outages []time.Duration
	for r := range restarts {
		base := ok.Load()
		eventually(t, "calls flowing", func() bool { return ok.Load() >= base+50 })
		before := p.Stats()
		downAt := time.Now()
		rs.stop()
		// Down until the pool has noticed (a session died) and FailureThreshold
		// connects were refused, which opened the breaker before: about a
		// second of backoff.
		// A connect that reached the server as it stopped can wait out its
		// ConnectTimeout (10s) before it counts: the bound follows it.
		noticed := time.Now().Add(3 * mcpool.DefaultConnectTimeout)
		for st := p.Stats(); st.Deaths <= before.Deaths || st.ConnectErrors < before.ConnectErrors+mcpool.DefaultFailureThreshold; st = p.Stats() {
			if time.Now().After(noticed) {
				t.Fatalf("the pool did not notice the restart: %d deaths, %d connect errors (before: %d, %d)", st.Deaths, st.ConnectErrors, before.Deaths, before.ConnectErrors)
			}
			time.Sleep(time.Millisecond)
		}
		rs.start()
		outages = append(outages, time.Since(downAt))
		t.Logf("restart %d: down %v", r+1, time.Since(downAt).Round(time.Millisecond))
	}
	base := ok.Load()
	eventually(t, "calls flowing after the last restart", func() bool { return ok.Load() >= base+50 })
	close(stop)
	<-loaded
	longest := ft.check(t, restartDeadline)
	n := ft.count()
	st := p.Stats()
	if failed := len(ft.calls) - n["ok"]; failed != 0 {
		t.Errorf("%d of %d read-only calls failed across %d restarts: %v", failed, len(ft.calls), restarts, n)
		shown := 0
		ft.mu.Lock()
		for _, c := range ft.calls {
			if c.err != nil && shown < 5 {
				shown++
				t.Logf("call %d: %v", c.i, c.err)
			}
		}
		ft.mu.Unlock()
	}
	if st.Unavailable != 0 || st.Breaker != "closed" {
		t.Errorf("the breaker opened on a restart: unavailable=%d breaker=%s", st.Unavailable, st.Breaker)
	}
	t.Log(reliabilityLine("restart-default/go-sdk-http", n, st, fmt.Sprintf("restarts=%d outages=%v max_call=%s", restarts, outages, ms(longest))))
}

// stdio children killed with SIGKILL every 300ms, whatever the pool is
// doing (a child still starting included), while 16 callers call a
// read-only tool. The children (the go-sdk demo server) take 250ms to
// start, as node does, so many kills hit a child before it answered
// initialize. With default settings every call succeeds: a call whose
// session dies is retried on another, and a connect killed while it
// initializes does not starve the pool. (Before, such kills opened the
// breaker and calls failed with ErrServerUnavailable.)
func TestKill9EveryFewHundredMsDefaults(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := stdioCommand(t)
	cmd.Env = append(cmd.Env, stdioStartDelayEnv+"=250ms")
	p := newPool(t, mcpool.Config{Command: cmd})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	var ft faultTally
	stop := make(chan struct{})
	var kills atomic.Int64
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for range 20 { // 6s of kills; a tick that finds no live child kills nothing
			<-tick.C
			if pids := liveChildren(t, exe); len(pids) > 0 {
				if syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
					kills.Add(1)
				}
			}
		}
	}()
	load := faultLoad{callers: 16, gap: 2 * time.Millisecond, deadline: restartDeadline, stop: stop, call: echoCall(p, "")}
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		load.run(&ft)
	}()
	<-killed
	close(stop)
	<-loaded
	longest := ft.check(t, restartDeadline)
	n := ft.count()
	st := p.Stats()
	if failed := len(ft.calls) - n["ok"]; failed != 0 {
		t.Errorf("%d of %d read-only calls failed under %d kills: %v", failed, len(ft.calls), kills.Load(), n)
	}
	if st.Deaths == 0 || st.Unavailable != 0 {
		t.Errorf("deaths=%d unavailable=%d: want deaths and never the breaker", st.Deaths, st.Unavailable)
	}
	t.Log(reliabilityLine("kill9-300ms-default/go-sdk-stdio", n, st, fmt.Sprintf("kills=%d max_call=%s", kills.Load(), ms(longest))))
}

// A port closed for good: connects fail for BreakerOpenAfter, then the
// breaker opens and Start and every Acquire fail with ErrServerUnavailable
// without waiting for AcquireTimeout (30s here).
func TestServerGoneFailsFast(t *testing.T) {
	const openAfter = 300 * time.Millisecond
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", freePort(t))
	p := newPool(t, mcpool.Config{URL: url, BreakerOpenAfter: openAfter})
	start := time.Now()
	err := p.Start(context.Background())
	took := time.Since(start)
	mustIs(t, err, mcpool.ErrServerUnavailable)
	mustIs(t, err, syscall.ECONNREFUSED)
	if took < openAfter {
		t.Fatalf("Start gave up after %v, before BreakerOpenAfter (%v): a restart would have failed it", took, openAfter)
	}
	st := p.Stats()
	if st.Breaker != "open" || st.Status != mcpool.StatusUnavailable || st.ConnectErrors < mcpool.DefaultFailureThreshold {
		t.Fatalf("after Start: %+v", st)
	}
	var durs []time.Duration
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t0 := time.Now()
		_, err := p.Acquire(ctx)
		durs = append(durs, time.Since(t0))
		cancel()
		mustIs(t, err, mcpool.ErrServerUnavailable)
	}
	slices.Sort(durs)
	if worst := durs[len(durs)-1]; worst > 10*time.Second {
		t.Fatalf("an acquire took %v with the server gone: it waited instead of failing fast", worst)
	}
	t.Logf("RELIABILITY gone/http: start_gave_up=%s acquires=%d p50=%s p99=%s max=%s connect_errors=%d",
		ms(took), len(durs), durs[len(durs)/2], durs[len(durs)*99/100], durs[len(durs)-1], p.Stats().ConnectErrors)
}

// Start rides out a server that comes up late: connects are refused at
// first, and Start keeps retrying until one succeeds.
func TestStartRidesOutLateServer(t *testing.T) {
	rs := &restartable{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(func() { // after the pool's Close, which DELETEs its session
		if rs.hs != nil {
			rs.stop()
		}
	})
	p := newPool(t, mcpool.Config{URL: rs.url()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- p.Start(ctx) }()
	eventually(t, "two refused connects", func() bool { return p.Stats().ConnectErrors >= 2 })
	rs.start()
	if err := <-started; err != nil {
		t.Fatalf("Start with a server that came up late: %v", err)
	}
	if st := p.Stats(); st.Sessions < 1 {
		t.Fatalf("Start returned nil without a session: %+v", st)
	}
	echo(t, context.Background(), p, "late")
}

// Start fails at once, without retrying, on failures that retrying cannot
// cure: a missing executable, 404 or 403 at the URL.
func TestStartFailsAtOnceOnPermanentFailures(t *testing.T) {
	statusServer := func(code int) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, http.StatusText(code), code)
		}))
		t.Cleanup(ts.Close)
		return ts.URL + "/mcp"
	}
	cases := []struct {
		name string
		cfg  mcpool.Config
		is   error
	}{
		{"missing executable", mcpool.Config{Command: &mcpool.Command{Path: "/nonexistent/mcpool-test-server"}}, fs.ErrNotExist},
		{"404", mcpool.Config{URL: statusServer(http.StatusNotFound)}, nil},
		{"403", mcpool.Config{URL: statusServer(http.StatusForbidden)}, nil},
		// The server's 401 stays permanent (a failed TokenFunc does not:
		// see TestTokenLookupFailureAtConnectIsRetried).
		{"401", mcpool.Config{URL: statusServer(http.StatusUnauthorized), BearerToken: "tok"}, mcpool.ErrUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPool(t, c.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := p.Start(ctx)
			mustIs(t, err, mcpool.ErrConnectFailed)
			if c.is != nil {
				mustIs(t, err, c.is)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Start waited for its ctx: %v", err)
			}
			if n := p.Stats().ConnectErrors; n != 1 {
				t.Fatalf("%d connects, want 1: a permanent failure is not retried (%v)", n, err)
			}
			// And acquires fail at once too: the breaker opened.
			_, aerr := p.Acquire(ctx)
			mustIs(t, aerr, mcpool.ErrServerUnavailable)
		})
	}
}

// Close while Start waits for a server that is not there: Start returns
// ErrPoolClosed, not the connect failure.
func TestStartDuringCloseIsPoolClosed(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", freePort(t))
	p, err := mcpool.New(mcpool.Config{URL: url, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- p.Start(context.Background()) }()
	eventually(t, "a refused connect", func() bool { return p.Stats().ConnectErrors >= 1 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-started; !errors.Is(err, mcpool.ErrPoolClosed) {
		t.Fatalf("Start during Close: %v, want ErrPoolClosed", err)
	}
	mustIs(t, p.Start(context.Background()), mcpool.ErrPoolClosed)
}

// Start's error for a permanent failure is what its doc and the README say:
// an *UnavailableError (the breaker opened) that unwraps to the
// *ConnectError, with the mcpool: prefix once.
func TestStartPermanentErrorIsUnavailableWrappingConnectError(t *testing.T) {
	p := newPool(t, mcpool.Config{Command: &mcpool.Command{Path: "/nonexistent/mcp-server"},
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Start(ctx)
	var ue *mcpool.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, mcpool.ErrServerUnavailable) {
		t.Fatalf("Start: %T %v; want an *UnavailableError matching ErrServerUnavailable", err, err)
	}
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, mcpool.ErrConnectFailed) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Start: %v; want it to unwrap to the *ConnectError of the missing executable", err)
	}
	if n := strings.Count(err.Error(), "mcpool:"); n != 1 {
		t.Fatalf("%q says mcpool: %d times", err, n)
	}
}
