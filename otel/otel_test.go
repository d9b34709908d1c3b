package mcpoolotel_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	mcpoolotel "github.com/mcpool/mcpool/otel"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closePeer ends the server's sessions, then the server: a session's read
// loop would otherwise end only some time after the client's DELETE, and
// a busy machine can let goleak see it.
func closePeer(s *mcp.Server, ts *httptest.Server) {
	for ss := range s.Sessions() {
		_ = ss.Close()
	}
	ts.Close()
}

// metaRecorder is a go-sdk server middleware that keeps the trace context
// each tools/call arrived with, as a server's tracing would extract it.
type metaRecorder struct {
	mu   sync.Mutex
	seen []trace.SpanContext
	raw  []string
}

func (r *metaRecorder) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "tools/call" {
			sc := trace.SpanContextFromContext(mcpoolotel.Extract(ctx, nil, req.GetParams()))
			tp, _ := req.GetParams().GetMeta()["traceparent"].(string)
			r.mu.Lock()
			r.seen = append(r.seen, sc)
			r.raw = append(r.raw, tp)
			r.mu.Unlock()
		}
		return next(ctx, method, req)
	}
}

// TestSpansMetricsAndPropagation calls tools through an instrumented pool
// over loopback HTTP: one CLIENT span per call with the MCP attributes, an
// acquire span beside it, the operation duration and pool metrics, and the
// go-sdk server receiving the caller's traceparent in _meta.
func TestSpansMetricsAndPropagation(t *testing.T) {
	// A stateless server speaks 2026-07-28 (no sessions, so no
	// mcp.session.id); a stateful one 2025-11-25, with a session id.
	t.Run("stateless", func(t *testing.T) { testSpans(t, true, "2026-07-28") })
	t.Run("stateful", func(t *testing.T) { testSpans(t, false, "2025-11-25") })
}

func testSpans(t *testing.T, stateless bool, version string) {
	rec := &metaRecorder{}
	srv := demoserver.New(demoserver.Options{})
	srv.AddReceivingMiddleware(rec.middleware)
	ts := httptest.NewServer(demoserver.Handler(srv, stateless, 0))
	t.Cleanup(func() { closePeer(srv, ts) })
	u, _ := url.Parse(ts.URL)
	port, _ := strconv.Atoi(u.Port())

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})

	p, err := mcpool.New(mcpool.Config{URL: ts.URL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HealthCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	reg, err := mcpoolotel.Instrument(p, mcpoolotel.Options{PoolName: "demo", TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister() })

	ctx, parent := tp.Tracer("test").Start(context.Background(), "agent")
	const calls = 3
	for i := range calls {
		res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": strconv.Itoa(i)}})
		if err != nil || res.IsError {
			t.Fatalf("echo: %v %v", res, err)
		}
	}
	_, err = p.CallTool(ctx, &mcp.CallToolParams{Name: "no-such-tool", Arguments: map[string]any{}})
	if err == nil {
		t.Fatal("a call to an unknown tool succeeded")
	}
	parent.End()
	st := p.Stats()

	var echoSpans []sdktrace.ReadOnlySpan
	acquires := 0
	for _, s := range spans.Ended() {
		switch s.Name() {
		case "tools/call echo":
			echoSpans = append(echoSpans, s)
		case "mcpool.acquire":
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				acquires++
			}
		case "tools/call no-such-tool":
			if got := attrs(s)["error.type"]; got == "" {
				t.Errorf("failed call's span has no error.type: %v", attrs(s))
			}
		}
	}
	if len(echoSpans) != calls {
		t.Fatalf("%d spans named %q, want %d (one per call)", len(echoSpans), "tools/call echo", calls)
	}
	if acquires < calls+1 {
		t.Errorf("%d acquire spans under the caller's span, want %d", acquires, calls+1)
	}
	if st.ProtocolVersion != version {
		t.Fatalf("protocol version %q in Stats, want %q", st.ProtocolVersion, version)
	}
	t.Logf("protocol %s", st.ProtocolVersion)
	ids := map[trace.SpanID]bool{}
	for _, s := range echoSpans {
		ids[s.SpanContext().SpanID()] = true
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span kind %v, want CLIENT", s.SpanKind())
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span's parent is not the caller's span")
		}
		a := attrs(s)
		want := map[string]string{
			"mcp.method.name":       "tools/call",
			"gen_ai.tool.name":      "echo",
			"gen_ai.operation.name": "execute_tool",
			"mcp.protocol.version":  st.ProtocolVersion,
			"network.transport":     "tcp",
			"server.address":        "127.0.0.1",
			"server.port":           strconv.Itoa(port),
		}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("span attribute %s = %q, want %q", k, a[k], v)
			}
		}
		if _, ok := a["error.type"]; ok {
			t.Errorf("successful call's span has error.type %q", a["error.type"])
		}
		// mcp.session.id only for protocols with sessions.
		if _, ok := a["mcp.session.id"]; ok != (st.ProtocolVersion != "2026-07-28") {
			t.Errorf("mcp.session.id present=%v under protocol %s", ok, st.ProtocolVersion)
		}
	}

	// The server got the trace context of each call's span.
	rec.mu.Lock()
	seen, raw := rec.seen, rec.raw
	rec.mu.Unlock()
	if len(seen) != calls+1 {
		t.Fatalf("server saw %d tools/call, want %d", len(seen), calls+1)
	}
	for i, sc := range seen[:calls] {
		if raw[i] == "" {
			t.Errorf("call %d: no traceparent in _meta", i)
		}
		if sc.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("call %d: server's trace id %s, want the caller's %s", i, sc.TraceID(), parent.SpanContext().TraceID())
		}
		if !ids[sc.SpanID()] {
			t.Errorf("call %d: server's parent span %s is not one of the CLIENT spans", i, sc.SpanID())
		}
	}

	// Metrics. Closing the pool ends its session: its lifetime is recorded.
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	for _, name := range []string{"mcp.client.operation.duration", "mcpool.session.count", "mcpool.session.max",
		"mcpool.session.pending_requests", "mcpool.session.timeouts", "mcpool.session.create_time",
		"mcpool.session.wait_time", "mcpool.session.use_time", "mcp.client.session.duration"} {
		if got[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if h, ok := got["mcp.client.operation.duration"].(metricdata.Histogram[float64]); ok {
		var echoCount uint64
		for _, dp := range h.DataPoints {
			if v, _ := dp.Attributes.Value("gen_ai.tool.name"); v.AsString() == "echo" {
				echoCount += dp.Count
			}
		}
		if echoCount != calls {
			t.Errorf("mcp.client.operation.duration counts %d echo calls, want %d", echoCount, calls)
		}
	}
	if h, ok := got["mcpool.session.wait_time"].(metricdata.Histogram[float64]); ok {
		var n uint64
		for _, dp := range h.DataPoints {
			n += dp.Count
		}
		if n != st.Acquires {
			t.Errorf("mcpool.session.wait_time count %d, Stats.Acquires %d", n, st.Acquires)
		}
	}
	if s, ok := got["mcpool.session.max"].(metricdata.Sum[int64]); !ok || len(s.DataPoints) != 1 || s.DataPoints[0].Value != int64(st.MaxSessions) {
		t.Errorf("mcpool.session.max = %+v, want %d", got["mcpool.session.max"], st.MaxSessions)
	}
}

// TestBareAcquireStartsNoTrace: without a span in the context, Acquire
// makes no span.
func TestBareAcquireStartsNoTrace(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(srv, false, 0))
	t.Cleanup(func() { closePeer(srv, ts) })
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p, err := mcpool.New(mcpool.Config{URL: ts.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HealthCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	reg, err := mcpoolotel.Instrument(p, mcpoolotel.Options{TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	for _, s := range spans.Ended() {
		if s.Name() == "mcpool.acquire" {
			t.Errorf("a bare Acquire made span %q", s.Name())
		}
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestSharedParamsUntouched: concurrent calls made directly on leased
// sessions with one shared params value each carry their own traceparent,
// and the shared value is never written (the race detector watches). The
// server is stateful (2025-11-25): under 2026-07-28 the SDK itself writes
// protocol _meta into the params it is given.
func TestSharedParamsUntouched(t *testing.T) {
	rec := &metaRecorder{}
	srv := demoserver.New(demoserver.Options{})
	srv.AddReceivingMiddleware(rec.middleware)
	ts := httptest.NewServer(demoserver.Handler(srv, false, 0))
	t.Cleanup(func() { closePeer(srv, ts) })
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p, err := mcpool.New(mcpool.Config{URL: ts.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HealthCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	reg, err := mcpoolotel.Instrument(p, mcpoolotel.Options{TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister() })

	shared := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}, Meta: mcp.Meta{"mine": "kept"}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ctx, span := tp.Tracer("test").Start(context.Background(), "agent")
			defer span.End()
			err := p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
				_, err := cs.CallTool(ctx, shared)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(shared.Meta) != 1 || shared.Meta["mine"] != "kept" {
		t.Errorf("shared params' _meta changed: %v", shared.Meta)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	traces := map[trace.TraceID]bool{}
	for i, sc := range rec.seen {
		if !sc.IsValid() {
			t.Errorf("call %d arrived without trace context", i)
		}
		traces[sc.TraceID()] = true
	}
	if len(rec.seen) != 4 || len(traces) != 4 {
		t.Errorf("server saw %d calls in %d traces, want 4 in 4", len(rec.seen), len(traces))
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

// TestInstrumentGroup: each server of a group reports under its own
// mcpool.pool.name, its replicas summed.
func TestInstrumentGroup(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(srv, false, 0))
	t.Cleanup(func() { closePeer(srv, ts) })
	newPool := func() *mcpool.Pool {
		p, err := mcpool.New(mcpool.Config{URL: ts.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HealthCheckInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p
	}
	g := servers{"a": {newPool(), newPool()}, "b": {newPool()}}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	reg, err := mcpoolotel.InstrumentGroup(g, mcpoolotel.Options{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister() })
	ctx := context.Background()
	for _, p := range append(g["a"], g["b"]...) {
		if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, s := range spans.Ended() {
		if s.Name() == "tools/call echo" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d call spans, want 3", n)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	used := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "mcpool.session.count" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				name, _ := dp.Attributes.Value("mcpool.pool.name")
				used[name.AsString()] += dp.Value
			}
		}
	}
	if used["a"] != 2 || used["b"] != 1 {
		t.Errorf("sessions by pool name: %v, want a=2 b=1", used)
	}
}

// A Group is a Servers.
var _ mcpoolotel.Servers = (*mcpool.Group)(nil)
