package mcpool_test

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// recordLogs is a slog handler that keeps the records it gets.
type recordLogs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *recordLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordLogs) WithGroup(string) slog.Handler      { return h }

// leaks returns the stacks of the leak warnings logged so far.
func (h *recordLogs) leaks() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var stacks []string
	for _, r := range h.records {
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, "LeakThreshold") {
			continue
		}
		stack := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "stack" {
				stack = a.Value.String()
			}
			return true
		})
		stacks = append(stacks, stack)
	}
	return stacks
}

// TestLeakDetection: a lease held past LeakThreshold yields exactly one
// warning, carrying the stack of the code that acquired it, and counts in
// Stats.
func TestLeakDetection(t *testing.T) {
	logs := &recordLogs{}
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	p := newPool(t, mcpool.Config{NewTransport: nt, LeakThreshold: 50 * time.Millisecond, Logger: slog.New(logs)})
	ctx := context.Background()

	first, err := p.Acquire(ctx) // the stack must lead here
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a leak warning", func() bool { return len(logs.leaks()) == 1 })
	// A second lease, taken after the first warning and held until its own
	// warning: by then the first lease has been held past the threshold
	// twice, and must still have warned only once.
	second, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second lease's warning", func() bool { return len(logs.leaks()) >= 2 })
	first.Release()
	second.Release()

	// A lease released in time never warns: its timer is stopped.
	quick, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	quick.Release()

	stacks := logs.leaks()
	if len(stacks) != 2 {
		t.Fatalf("%d leak warnings for 2 leaked leases, want 2 (one each)", len(stacks))
	}
	for _, s := range stacks {
		if !strings.Contains(s, "mcpool_test.TestLeakDetection") {
			t.Errorf("leak warning's stack does not name the acquirer:\n%s", s)
		}
		if strings.Contains(s, "mcpool.(*Pool).Acquire") {
			t.Errorf("leak warning's stack starts inside the pool:\n%s", s)
		}
	}
	if got := p.Stats().LeakedLeases; got != 2 {
		t.Errorf("Stats.LeakedLeases = %d, want 2", got)
	}
}

// TestLeakThresholdOffByDefault: no warning, no count without the setting.
func TestLeakThresholdOffByDefault(t *testing.T) {
	logs := &recordLogs{}
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	p := newPool(t, mcpool.Config{NewTransport: nt, Logger: slog.New(logs)})
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if n := len(logs.leaks()); n != 0 || p.Stats().LeakedLeases != 0 {
		t.Errorf("leak warnings without LeakThreshold: %d", n)
	}
}

// TestObserverEvents: an Observer sees acquires, releases, the call, its
// request, the connect and the sessions closed, with what each promises.
func TestObserverEvents(t *testing.T) {
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	p := newPool(t, mcpool.Config{NewTransport: nt})
	var (
		mu       sync.Mutex
		acquires []mcpool.AcquireEvent
		releases []mcpool.ReleaseEvent
		callsEnd []mcpool.CallEvent
		requests []mcpool.RequestEvent
		connects []mcpool.ConnectEvent
		closed   []mcpool.SessionEvent
	)
	type key struct{}
	p.Observe(mcpool.Observer{
		AcquireStart: func(ctx context.Context) context.Context { return context.WithValue(ctx, key{}, "acq") },
		AcquireEnd: func(ctx context.Context, e mcpool.AcquireEvent) {
			if ctx.Value(key{}) != "acq" {
				t.Error("AcquireEnd did not get AcquireStart's context")
			}
			mu.Lock()
			acquires = append(acquires, e)
			mu.Unlock()
		},
		Release: func(e mcpool.ReleaseEvent) { mu.Lock(); releases = append(releases, e); mu.Unlock() },
		CallEnd: func(_ context.Context, e mcpool.CallEvent) { mu.Lock(); callsEnd = append(callsEnd, e); mu.Unlock() },
		RequestStart: func(ctx context.Context, e *mcpool.RequestEvent) context.Context {
			return context.WithValue(ctx, key{}, "req")
		},
		RequestEnd: func(ctx context.Context, e *mcpool.RequestEvent) {
			if ctx.Value(key{}) != "req" {
				t.Error("RequestEnd did not get RequestStart's context")
			}
			mu.Lock()
			requests = append(requests, *e)
			mu.Unlock()
		},
		Connect:       func(e mcpool.ConnectEvent) { mu.Lock(); connects = append(connects, e); mu.Unlock() },
		SessionClosed: func(e mcpool.SessionEvent) { mu.Lock(); closed = append(closed, e); mu.Unlock() },
	})
	ctx := context.Background()
	echo(t, ctx, p, "hi")
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	l.Release() // a repeated Release is not reported
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(acquires) != 2 || acquires[0].Err != nil || acquires[0].SessionID == 0 {
		t.Errorf("acquire events: %+v", acquires)
	}
	if len(releases) != 2 {
		t.Errorf("%d release events, want 2", len(releases))
	}
	if len(callsEnd) != 1 || callsEnd[0].Tool != "echo" || callsEnd[0].Outcome != mcpool.OutcomeOK || callsEnd[0].Duration <= 0 {
		t.Errorf("call events: %+v", callsEnd)
	}
	var call *mcpool.RequestEvent
	for i := range requests {
		if requests[i].Method == "tools/call" {
			call = &requests[i]
		}
	}
	if call == nil || call.Name != "echo" || call.Err != nil || call.Result == nil || call.ProtocolVersion == "" || call.Session == nil {
		t.Errorf("tools/call request event: %+v", call)
	}
	if len(connects) != 1 || connects[0].Err != nil || connects[0].Duration <= 0 {
		t.Errorf("connect events: %+v", connects)
	}
	if len(closed) != 1 || closed[0].Reason != "closed" {
		t.Errorf("session closed events: %+v", closed)
	}
}

// TestHealthScore: a pool connecting has no session yet; once connected
// and serving it scores 1; when its server fails calls in transit the
// score falls below HealthyScore and the status leaves "connected".
func TestHealthScore(t *testing.T) {
	proxy, url := partitionedServer(t)
	p := newPool(t, mcpool.Config{URL: url, HealthCheckInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if st := p.Stats(); st.Health != mcpool.HealthConnecting {
		t.Errorf("before Start: %s, want connecting", st.Health)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		echo(t, ctx, p, "x")
	}
	if st := p.Stats(); st.Health != mcpool.HealthConnected || st.HealthScore != 1 {
		t.Fatalf("serving: %s %.2f, want connected 1", st.Health, st.HealthScore)
	}
	// Calls the server answers with a JSON-RPC error are still answers. Four
	// of them: with the five echoes that stays under the ten calls after
	// which latency counts too, so the score here depends on outcomes
	// alone, not on how busy the machine is.
	for range 4 {
		_, _ = p.CallTool(ctx, &mcp.CallToolParams{Name: "no-such-tool"})
	}
	if st := p.Stats(); st.HealthScore != 1 {
		t.Errorf("after JSON-RPC errors: score %.2f, want 1", st.HealthScore)
	}
	// The server goes away: calls fail in transit, probes and reconnects
	// fail.
	proxy.Drop()
	for range 10 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = p.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}})
		cancel()
	}
	st := p.Stats()
	t.Logf("after failing calls: %s, score %.2f", st.Health, st.HealthScore)
	if st.HealthScore >= mcpool.HealthyScore || st.Health == mcpool.HealthConnected {
		t.Errorf("after failing calls: %s %.2f, want below %.2f and not connected", st.Health, st.HealthScore, mcpool.HealthyScore)
	}
}

// TestNoMetricsLibrariesInCore: the core package depends on neither
// Prometheus nor OpenTelemetry; they live in the subpackages prom and otel.
func TestNoMetricsLibrariesInCore(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/modelcontextprotocol/go-sdk/mcp") {
		t.Fatalf("go list -deps does not list the go-sdk: %d packages", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/prometheus/") || strings.HasPrefix(d, "go.opentelemetry.io/") {
			t.Errorf("the core package depends on %s", d)
		}
	}
}
