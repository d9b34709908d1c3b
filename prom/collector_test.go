package mcpoolprom_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	mcpoolprom "github.com/mcpool/mcpool/prom"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// demoHTTP serves the demo server over loopback HTTP until the test ends,
// when its sessions are closed before the server: a session's read loop
// would otherwise end only some time after the client's DELETE, and a busy
// machine can let goleak see it.
func demoHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(srv, false, 0))
	t.Cleanup(func() {
		for ss := range srv.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	})
	return ts
}

// newHTTPPool serves the demo server over loopback HTTP and returns a pool
// for it, closed when the test ends.
func newHTTPPool(t *testing.T, cfg mcpool.Config) *mcpool.Pool {
	t.Helper()
	ts := demoHTTP(t)
	cfg.URL = ts.URL
	cfg.Logger = quiet()
	p, err := mcpool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// documentedMetrics returns the metric names of the Metrics table in docs/metrics.md.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "## Metrics")
	if start < 0 {
		t.Fatal("docs/metrics.md has no Metrics section")
	}
	s = s[start+len("## Metrics"):]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end]
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(mcpool_[a-z_]+)`").FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("docs/metrics.md Metrics table lists %d metrics; want them all", len(names))
	}
	return names
}

// TestCollectorAgreesWithStats drives a pool over loopback HTTP with
// concurrent calls, a queue, an acquire timeout, catalog lookups and an
// idle retirement, then scrapes the collector: every documented metric is
// there, and every value agrees with Stats.
func TestCollectorAgreesWithStats(t *testing.T) {
	p := newHTTPPool(t, mcpool.Config{MinSessions: 1, MaxSessions: 2, MaxCallsPerSession: 2,
		MaxIdleTime: 200 * time.Millisecond, HealthCheckInterval: -1})
	reg := prometheus.NewPedanticRegistry()
	c, err := mcpoolprom.Register(reg, "demo", p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Scrapes run throughout the load (the race detector watches).
	stopScraping := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stopScraping:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("scrape under load: %v", err)
				return
			}
		}
	})

	// Load: 8 callers on 4 slots, so callers queue.
	const workers, perWorker = 8, 5
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range perWorker {
				tool, args := "echo", map[string]any{"message": "hi"}
				if w%2 == 0 {
					tool, args = "sleep", map[string]any{"ms": 5}
				}
				if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args}); err != nil {
					t.Errorf("%s: %v", tool, err)
				}
			}
		})
	}
	for range 3 {
		if _, err := p.ListTools(ctx); err != nil {
			t.Errorf("ListTools: %v", err)
		}
	}
	wg.Wait()
	close(stopScraping)
	scrapes.Wait()

	// An acquire timeout: every slot held, a call whose deadline passes.
	var leases []mcpool.Lease
	for range 4 {
		l, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = p.CallTool(short, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "late"}})
	cancel()
	if mcpool.CallOutcome(nil, err) != mcpool.OutcomeExhausted {
		t.Fatalf("call with every slot held: %v, want ErrPoolExhausted", err)
	}
	for i := range leases {
		leases[i].Release()
	}

	// Quiet again, and the second session retired for idleness.
	eventually(t, "the extra session retired", func() bool {
		st := p.Stats()
		return st.Sessions == 1 && st.CallsInFlight == 0 && st.Waiters == 0 && st.Connecting == 0 && st.SessionsDestroyed >= 1
	})

	st := p.Stats()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
	}
	for _, name := range documentedMetrics(t) {
		if got[name] == nil {
			t.Errorf("documented metric %s not exported", name)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("metric %s exported but not documented in docs/metrics.md", name)
	}

	want := map[string]float64{
		"mcpool_max_sessions":                 float64(st.MaxSessions),
		"mcpool_calls_in_flight":              float64(st.CallsInFlight),
		"mcpool_waiters":                      float64(st.Waiters),
		"mcpool_calls_per_session_limit":      float64(st.CallsPerSessionLimit),
		"mcpool_health_score":                 st.HealthScore,
		"mcpool_consecutive_connect_failures": float64(st.ConsecutiveFailures),
		"mcpool_acquires_total":               float64(st.Acquires),
		"mcpool_acquire_timeouts_total":       float64(st.AcquireTimeouts),
		"mcpool_acquires_refused_total":       float64(st.Unavailable),
		"mcpool_sessions_created_total":       float64(st.SessionsCreated),
		"mcpool_reconnects_total":             float64(st.Reconnects),
		"mcpool_connect_errors_total":         float64(st.ConnectErrors),
		"mcpool_session_deaths_total":         float64(st.Deaths),
		"mcpool_probes_total":                 float64(st.Probes),
		"mcpool_probe_failures_total":         float64(st.ProbeFailures),
		"mcpool_retries_total":                float64(st.Retries),
		"mcpool_lost_calls_total":             float64(st.LostCalls),
		"mcpool_catalog_cache_hits_total":     float64(st.CacheHits),
		"mcpool_catalog_cache_misses_total":   float64(st.CacheMisses),
		"mcpool_catalog_invalidations_total":  float64(st.CacheInvalidations),
		"mcpool_leaked_leases_total":          float64(st.LeakedLeases),
		"mcpool_catalog_store_hits_total":     float64(st.StoreHits),
		"mcpool_catalog_store_errors_total":   float64(st.StoreErrors),
	}
	for name, v := range want {
		if g := value(families, name, nil); g != v {
			t.Errorf("%s = %v, Stats says %v", name, g, v)
		}
	}
	for state, v := range map[string]int{"active": st.ActiveSessions, "idle": st.IdleSessions, "connecting": st.Connecting} {
		if g := value(families, "mcpool_sessions", map[string]string{"state": state}); g != float64(v) {
			t.Errorf("mcpool_sessions{state=%q} = %v, Stats says %d", state, g, v)
		}
	}
	if g := value(families, "mcpool_breaker_state", map[string]string{"state": st.Breaker}); g != 1 {
		t.Errorf("mcpool_breaker_state{state=%q} = %v, want 1", st.Breaker, g)
	}
	if g := value(families, "mcpool_health_status", map[string]string{"status": string(st.Health)}); g != 1 {
		t.Errorf("mcpool_health_status{status=%q} = %v, want 1", st.Health, g)
	}

	// The observed series agree with Stats and with the load.
	if n := histCount(families, "mcpool_acquire_wait_seconds", nil); n != st.Acquires {
		t.Errorf("mcpool_acquire_wait_seconds count = %d, Stats.Acquires = %d", n, st.Acquires)
	}
	if g := value(families, "mcpool_sessions_closed_total", nil); g != float64(st.SessionsDestroyed) {
		t.Errorf("mcpool_sessions_closed_total sums to %v, Stats.SessionsDestroyed = %d", g, st.SessionsDestroyed)
	}
	if g := value(families, "mcpool_sessions_closed_total", map[string]string{"reason": "idle"}); g < 1 {
		t.Errorf("mcpool_sessions_closed_total{reason=idle} = %v, want ≥ 1", g)
	}
	for _, tool := range []string{"echo", "sleep"} {
		ok := map[string]string{"tool": tool, "outcome": "ok"}
		if g := value(families, "mcpool_calls_total", ok); g != workers/2*perWorker {
			t.Errorf("mcpool_calls_total{tool=%q,outcome=ok} = %v, want %d", tool, g, workers/2*perWorker)
		}
		if n := histCount(families, "mcpool_call_duration_seconds", ok); n != workers/2*perWorker {
			t.Errorf("mcpool_call_duration_seconds{tool=%q,outcome=ok} count = %d, want %d", tool, n, workers/2*perWorker)
		}
	}
	if g := value(families, "mcpool_calls_total", map[string]string{"tool": "echo", "outcome": "exhausted"}); g != 1 {
		t.Errorf("mcpool_calls_total{tool=echo,outcome=exhausted} = %v, want 1", g)
	}
	if st.Acquires < workers*perWorker+4 || st.AcquireTimeouts != 1 || st.CacheHits < 1 || st.CacheMisses < 1 {
		t.Errorf("the load did not show: %+v", st)
	}

	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
}

// TestToolLabelsBounded: calls to more tool names than MaxTools share the
// "_other" label.
func TestToolLabelsBounded(t *testing.T) {
	p := newHTTPPool(t, mcpool.Config{HealthCheckInterval: -1})
	c := mcpoolprom.New(mcpoolprom.Options{MaxTools: 1})
	if err := c.AddPool("demo", p); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPool("demo", p); err == nil {
		t.Fatal("a second pool under the same name was accepted")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	ctx := context.Background()
	for _, name := range []string{"echo", "no-such-tool-1", "no-such-tool-2"} {
		_, _ = p.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"message": "x"}})
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if g := value(families, "mcpool_calls_total", map[string]string{"tool": "_other"}); g != 2 {
		t.Errorf("calls under tool=_other: %v, want 2", g)
	}
	if g := value(families, "mcpool_calls_total", map[string]string{"tool": "echo"}); g != 1 {
		t.Errorf("calls under tool=echo: %v, want 1", g)
	}
}

// TestKeyed exports a keyed pool: one server label, identities nowhere.
func TestKeyed(t *testing.T) {
	ts := demoHTTP(t)
	k, err := mcpool.NewKeyed(mcpool.KeyedConfig{Config: mcpool.Config{URL: ts.URL, Logger: quiet(), HealthCheckInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close(context.Background()) })
	reg := prometheus.NewPedanticRegistry()
	c := mcpoolprom.New(mcpoolprom.Options{})
	if err := c.AddKeyed("tenants", k); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(c)
	ctx := context.Background()
	for _, id := range []string{"alice-secret-id", "bob-secret-id"} {
		if _, err := k.CallTool(ctx, id, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if g := value(families, "mcpool_calls_total", map[string]string{"server": "tenants", "tool": "echo", "outcome": "ok"}); g != 2 {
		t.Errorf("keyed calls: %v, want 2", g)
	}
	if g := value(families, "mcpool_acquires_total", nil); g != 2 {
		t.Errorf("keyed acquires: %v, want 2", g)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Errorf("identity in label %s=%q of %s", l.GetName(), l.GetValue(), f.GetName())
				}
			}
		}
	}
}

// A server removed and added again before the next scrape (a reload's new
// keyed pool) is read from its new pool, its event counters going on; one
// removed for good leaves the scrape, event counters included.
func TestRemove(t *testing.T) {
	ts := demoHTTP(t)
	newKeyed := func() *mcpool.Keyed {
		k, err := mcpool.NewKeyed(mcpool.KeyedConfig{Config: mcpool.Config{URL: ts.URL, Logger: quiet(), HealthCheckInterval: -1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k.Close(context.Background()) })
		return k
	}
	ctx := context.Background()
	call := func(k *mcpool.Keyed) {
		if _, err := k.CallTool(ctx, "id", &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	c := mcpoolprom.New(mcpoolprom.Options{})
	reg.MustRegister(c)
	old := newKeyed()
	if err := c.AddKeyed("p", old); err != nil {
		t.Fatal(err)
	}
	call(old)
	if !c.Remove("p") || c.Remove("p") {
		t.Fatal("Remove: want true for the server added, then false")
	}
	_ = old.Close(ctx)
	k := newKeyed()
	if err := c.AddKeyed("p", k); err != nil {
		t.Fatalf("adding the name again: %v", err)
	}
	call(k)
	call(k)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if g := value(families, "mcpool_acquires_total", map[string]string{"server": "p"}); g != 2 {
		t.Errorf("acquires of the new pool: %v, want 2 (its own, not the old one's)", g)
	}
	if g := value(families, "mcpool_calls_total", map[string]string{"server": "p", "outcome": "ok"}); g != 3 {
		t.Errorf("calls counted under the name: %v, want 3 (the counter goes on)", g)
	}
	c.Remove("p")
	if families, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mcpool_acquires_total", "mcpool_calls_total", "mcpool_call_duration_seconds", "mcpool_acquire_wait_seconds"} {
		if n := len(series(families, name, map[string]string{"server": "p"})); n != 0 {
			t.Errorf("%d %s series of the removed server, want none", n, name)
		}
	}
}

// value sums the values of a family's series whose labels include want.
func value(families []*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range series(families, name, want) {
		switch {
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		}
	}
	return sum
}

func histCount(families []*dto.MetricFamily, name string, want map[string]string) uint64 {
	var n uint64
	for _, m := range series(families, name, want) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

func series(families []*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// BenchmarkAcquireReleaseObserved is BenchmarkAcquireRelease of the root
// package with a collector attached: the cost of the hook when set.
func BenchmarkAcquireReleaseObserved(b *testing.B) {
	srv := demoserver.New(demoserver.Options{})
	nt := func(ctx context.Context) (mcp.Transport, error) {
		ct, st := mcp.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}
	p, err := mcpool.New(mcpool.Config{NewTransport: nt, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	defer p.Close(ctx)
	if _, err := mcpoolprom.Register(prometheus.NewRegistry(), "demo", p); err != nil {
		b.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l, err := p.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
}

// servers is the smallest group of servers: names and their replicas
// (real pools), as an *mcpool.Group offers them.
type servers map[string][]*mcpool.Pool

func (s servers) Servers() []string {
	var names []string
	for n := range s {
		names = append(names, n)
	}
	return names
}
func (s servers) Replicas(name string) []*mcpool.Pool { return s[name] }

// TestGroup exports a group: one server label per server, its replicas
// summed.
func TestGroup(t *testing.T) {
	g := servers{
		"a": {newHTTPPool(t, mcpool.Config{HealthCheckInterval: -1}), newHTTPPool(t, mcpool.Config{HealthCheckInterval: -1})},
		"b": {newHTTPPool(t, mcpool.Config{HealthCheckInterval: -1})},
	}
	c := mcpoolprom.New(mcpoolprom.Options{})
	if err := c.AddGroup(g); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPool("a", g["b"][0]); err == nil {
		t.Fatal("a pool under a group's server name was accepted")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	ctx := context.Background()
	for _, p := range append(g["a"], g["b"]...) {
		if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string]float64{"a": 2, "b": 1} {
		if got := value(families, "mcpool_calls_total", map[string]string{"server": server}); got != want {
			t.Errorf("calls of %s: %v, want %v", server, got, want)
		}
		if got := value(families, "mcpool_acquires_total", map[string]string{"server": server}); got != want {
			t.Errorf("acquires of %s: %v, want %v", server, got, want)
		}
		if got := value(families, "mcpool_sessions", map[string]string{"server": server}); got != want {
			t.Errorf("sessions of %s: %v, want %v", server, got, want)
		}
	}
}
