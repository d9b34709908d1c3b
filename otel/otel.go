// Package mcpoolotel instruments mcpool pools with OpenTelemetry, following
// the semantic conventions for MCP (Development status at the time of
// writing) and, for the pool itself, those of database client connection
// pools (db.client.connection.*).
//
// Each MCP request a pooled session sends becomes a span named
// "{mcp.method.name} {target}" (for example "tools/call echo"), of kind
// CLIENT, with the attributes mcp.method.name, gen_ai.tool.name and
// gen_ai.operation.name ("execute_tool") for tools/call, mcp.session.id
// (when the session has one: never under 2026-07-28), mcp.protocol.version,
// network.transport, server.address, server.port and, on failure,
// error.type. Its duration is recorded in the mcp.client.operation.duration
// histogram (seconds); each session's lifetime in mcp.client.session.duration.
// The span's context is injected into the request's
// params._meta as traceparent and tracestate (MCP SEP-414), so the
// server's spans join the caller's trace.
//
// Acquire is a span of its own, "mcpool.acquire" (INTERNAL), a sibling of
// the request spans under the caller's span, so the wait for room shows in
// the trace. It is made only when the caller's context carries a span: a
// bare Acquire starts no trace.
//
// Pool metrics, read from Stats or recorded from the pool's events:
// mcpool.session.count (by mcpool.session.state: idle, used, connecting),
// mcpool.session.max, mcpool.session.pending_requests,
// mcpool.session.timeouts, and the histograms mcpool.session.create_time,
// mcpool.session.wait_time and mcpool.session.use_time (seconds), each with
// the attribute mcpool.pool.name.
package mcpoolotel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/mcpool/mcpool/otel"

// Options configure the instrumentation. The zero value uses the global
// providers and W3C trace context.
type Options struct {
	// PoolName is the mcpool.pool.name attribute of the pool metrics; set
	// it when several pools report to one meter. Empty means "mcpool".
	PoolName string
	// TracerProvider nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into params._meta. Nil means
	// W3C trace context (traceparent, tracestate), which SEP-414 names:
	// not the global propagator, which is a no-op unless set.
	Propagator propagation.TextMapPropagator
}

// source is what is instrumented: a pool or a keyed pool.
type source struct {
	stats   func() mcpool.Stats
	observe func(mcpool.Observer)
}

// Instrument attaches tracing and metrics to p; do it before p.Start to see
// every connect. The returned registration ends the metric callbacks that
// read p's Stats: call its Unregister when p is closed.
func Instrument(p *mcpool.Pool, opts Options) (metric.Registration, error) {
	return instrument(source{stats: p.Stats, observe: p.Observe}, opts)
}

// InstrumentKeyed does the same for every identity's pool of k; the pool
// metrics are sums over them ([mcpool.Keyed.PoolStats]). Identities never
// appear in spans or metrics.
func InstrumentKeyed(k *mcpool.Keyed, opts Options) (metric.Registration, error) {
	return instrument(source{stats: k.PoolStats, observe: k.Observe}, opts)
}

// Servers is what InstrumentGroup reads of a group of servers, such as an
// *mcpool.Group: its server names and each server's pools (its replicas).
type Servers interface {
	Servers() []string
	Replicas(server string) []*mcpool.Pool
}

// InstrumentGroup instruments every server of g: its replicas' requests
// and pool events, with mcpool.pool.name set to the server's name (opts'
// PoolName is ignored) and the pool metrics summed over its replicas
// ([mcpool.SumStats]). Servers added to g later are not seen. The
// registration ends every server's metric callbacks.
func InstrumentGroup(g Servers, opts Options) (metric.Registration, error) {
	regs := &multiReg{}
	for _, name := range g.Servers() {
		pools := g.Replicas(name)
		o := opts
		o.PoolName = name
		reg, err := instrument(source{
			stats: func() mcpool.Stats {
				all := make([]mcpool.Stats, len(pools))
				for i, p := range pools {
					all[i] = p.Stats()
				}
				return mcpool.SumStats(all...)
			},
			observe: func(ob mcpool.Observer) {
				for _, p := range pools {
					p.Observe(ob)
				}
			},
		}, o)
		if err != nil {
			_ = regs.Unregister()
			return nil, err
		}
		regs.regs = append(regs.regs, reg)
	}
	return regs, nil
}

// multiReg unregisters several registrations.
type multiReg struct {
	embedded.Registration
	regs []metric.Registration
}

// Unregister implements metric.Registration for every registration at once.
func (m *multiReg) Unregister() error {
	var errs []error
	for _, r := range m.regs {
		errs = append(errs, r.Unregister())
	}
	return errors.Join(errs...)
}

type instr struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	pool       attribute.KeyValue
	poolSet    metric.MeasurementOption

	opDuration      metric.Float64Histogram
	sessionDuration metric.Float64Histogram
	createTime      metric.Float64Histogram
	waitTime        metric.Float64Histogram
	useTime         metric.Float64Histogram
}

func instrument(src source, opts Options) (metric.Registration, error) {
	tp, mp, prop := opts.TracerProvider, opts.MeterProvider, opts.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	name := opts.PoolName
	if name == "" {
		name = "mcpool"
	}
	in := &instr{tracer: tp.Tracer(ScopeName), propagator: prop, pool: attribute.String("mcpool.pool.name", name)}
	in.poolSet = metric.WithAttributeSet(attribute.NewSet(in.pool))
	m := mp.Meter(ScopeName)
	var err error
	sec := func(n, desc string) metric.Float64Histogram {
		h, e := m.Float64Histogram(n, metric.WithUnit("s"), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return h
	}
	in.opDuration = sec("mcp.client.operation.duration", "Duration of an MCP request as the client sees it.")
	in.sessionDuration = sec("mcp.client.session.duration", "Lifetime of an MCP session, from connect to close.")
	in.createTime = sec("mcpool.session.create_time", "Time to connect a session, initialize included.")
	in.waitTime = sec("mcpool.session.wait_time", "Time successful acquires waited for room on a session.")
	in.useTime = sec("mcpool.session.use_time", "Time a lease was held, from Acquire to Release.")
	count, e1 := m.Int64ObservableUpDownCounter("mcpool.session.count", metric.WithUnit("{session}"),
		metric.WithDescription("Sessions by state: idle, used (carrying calls), connecting."))
	maxSessions, e2 := m.Int64ObservableUpDownCounter("mcpool.session.max", metric.WithUnit("{session}"),
		metric.WithDescription("The configured cap on sessions."))
	pending, e3 := m.Int64ObservableUpDownCounter("mcpool.session.pending_requests", metric.WithUnit("{request}"),
		metric.WithDescription("Callers queued for room on a session."))
	timeouts, e4 := m.Int64ObservableCounter("mcpool.session.timeouts", metric.WithUnit("{timeout}"),
		metric.WithDescription("Acquires that gave up waiting for room."))
	if err = errors.Join(err, e1, e2, e3, e4); err != nil {
		return nil, fmt.Errorf("mcpoolotel: creating instruments: %w", err)
	}
	state := func(s string) metric.ObserveOption {
		return metric.WithAttributes(in.pool, attribute.String("mcpool.session.state", s))
	}
	idle, used, connecting := state("idle"), state("used"), state("connecting")
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := src.stats()
		o.ObserveInt64(count, int64(st.IdleSessions), idle)
		o.ObserveInt64(count, int64(st.ActiveSessions), used)
		o.ObserveInt64(count, int64(st.Connecting), connecting)
		o.ObserveInt64(maxSessions, int64(st.MaxSessions), metric.WithAttributes(in.pool))
		o.ObserveInt64(pending, int64(st.Waiters), metric.WithAttributes(in.pool))
		o.ObserveInt64(timeouts, int64(st.AcquireTimeouts), metric.WithAttributes(in.pool))
		return nil
	}, count, maxSessions, pending, timeouts)
	if err != nil {
		return nil, fmt.Errorf("mcpoolotel: registering the pool metrics: %w", err)
	}
	src.observe(mcpool.Observer{
		AcquireStart: in.acquireStart,
		AcquireEnd:   in.acquireEnd,
		Release:      func(e mcpool.ReleaseEvent) { in.useTime.Record(context.Background(), e.Held.Seconds(), in.poolSet) },
		Connect: func(e mcpool.ConnectEvent) {
			if e.Err == nil {
				in.createTime.Record(context.Background(), e.Duration.Seconds(), in.poolSet)
			}
		},
		SessionClosed: func(e mcpool.SessionEvent) {
			in.sessionDuration.Record(context.Background(), e.Lifetime.Seconds(), in.poolSet)
		},
		RequestStart: in.requestStart,
		RequestEnd:   in.requestEnd,
	})
	return reg, nil
}

const acquireSpan = "mcpool.acquire"

func (in *instr) acquireStart(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx // no trace to join: a bare Acquire starts none
	}
	ctx, span := in.tracer.Start(ctx, acquireSpan, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(in.pool))
	return context.WithValue(ctx, acquireKey{}, span)
}

func (in *instr) acquireEnd(ctx context.Context, e mcpool.AcquireEvent) {
	if e.Err == nil {
		in.waitTime.Record(ctx, e.Wait.Seconds(), in.poolSet)
	}
	span, ok := ctx.Value(acquireKey{}).(trace.Span)
	if !ok {
		return
	}
	if e.Err != nil {
		span.SetAttributes(attribute.String("error.type", mcpool.CallOutcome(nil, e.Err)))
		span.SetStatus(codes.Error, e.Err.Error())
	} else {
		span.SetAttributes(attribute.Int64("mcpool.session.local_id", int64(e.SessionID)))
	}
	span.End()
}

// acquireKey marks the context of an acquire span this package started.
type acquireKey struct{}

func (in *instr) requestStart(ctx context.Context, e *mcpool.RequestEvent) context.Context {
	name := e.Method
	if e.Name != "" {
		name += " " + e.Name
	}
	attrs := in.requestAttrs(e, nil)
	if e.SessionID != "" && e.ProtocolVersion != "2026-07-28" {
		attrs = append(attrs, attribute.String("mcp.session.id", e.SessionID))
	}
	ctx, _ = in.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	injectMeta(ctx, in.propagator, e.Params)
	return ctx
}

func (in *instr) requestEnd(ctx context.Context, e *mcpool.RequestEvent) {
	errType := errorType(e)
	in.opDuration.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(in.requestAttrs(e, &errType)...))
	span := trace.SpanFromContext(ctx)
	if errType != "" {
		span.SetAttributes(attribute.String("error.type", errType))
		msg := errType
		if e.Err != nil {
			msg = e.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End()
}

// requestAttrs are the attributes shared by the span and the duration
// metric: all of low cardinality.
func (in *instr) requestAttrs(e *mcpool.RequestEvent, errType *string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("mcp.method.name", e.Method)}
	switch e.Method {
	case "tools/call":
		attrs = append(attrs, attribute.String("gen_ai.tool.name", e.Name), attribute.String("gen_ai.operation.name", "execute_tool"))
	case "prompts/get":
		attrs = append(attrs, attribute.String("gen_ai.prompt.name", e.Name))
	}
	if e.ProtocolVersion != "" {
		attrs = append(attrs, attribute.String("mcp.protocol.version", e.ProtocolVersion))
	}
	if e.Transport != "" {
		attrs = append(attrs, attribute.String("network.transport", e.Transport))
	}
	if e.ServerAddress != "" {
		attrs = append(attrs, attribute.String("server.address", e.ServerAddress))
	}
	if e.ServerPort > 0 {
		attrs = append(attrs, attribute.Int("server.port", e.ServerPort))
	}
	if errType != nil && *errType != "" {
		attrs = append(attrs, attribute.String("error.type", *errType))
	}
	return attrs
}

// errorType is the error.type of a request: the JSON-RPC error code, or
// "tool_error" for a tool result with isError, or a word for the pool's
// own failures (timeout, canceled, lost…); "" on success.
func errorType(e *mcpool.RequestEvent) string {
	if e.Err == nil {
		if r, ok := e.Result.(*mcp.CallToolResult); ok && r != nil && r.IsError {
			return mcpool.OutcomeToolError
		}
		return ""
	}
	var werr *jsonrpc.Error
	if errors.As(e.Err, &werr) {
		return strconv.FormatInt(werr.Code, 10)
	}
	if o := mcpool.CallOutcome(nil, e.Err); o != mcpool.OutcomeError {
		return o
	}
	return "_OTHER"
}

// injectMeta writes the trace context of ctx into params._meta. The map is
// copied, never changed in place: the caller may share it.
func injectMeta(ctx context.Context, prop propagation.TextMapPropagator, params mcp.Params) {
	if params == nil {
		return
	}
	if v := reflect.ValueOf(params); v.Kind() == reflect.Pointer && v.IsNil() {
		return // a request without params (ping): nowhere to write
	}
	carrier := metaCarrier{}
	prop.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return
	}
	meta := make(map[string]any, len(params.GetMeta())+len(carrier))
	for k, v := range params.GetMeta() {
		meta[k] = v
	}
	for k, v := range carrier {
		meta[k] = v
	}
	params.SetMeta(meta)
}

// metaCarrier collects what a propagator injects.
type metaCarrier map[string]string

// Get implements propagation.TextMapCarrier.
func (c metaCarrier) Get(key string) string { return c[key] }

// Set implements propagation.TextMapCarrier.
func (c metaCarrier) Set(key, value string) { c[key] = value }

// Keys implements propagation.TextMapCarrier.
func (c metaCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Extract returns ctx with the trace context found in an MCP request's
// params._meta (traceparent, tracestate), for servers: start the handler's
// span from it so that it joins the caller's trace. A nil propagator means
// W3C trace context.
func Extract(ctx context.Context, prop propagation.TextMapPropagator, params mcp.Params) context.Context {
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	if params == nil {
		return ctx
	}
	if v := reflect.ValueOf(params); v.Kind() == reflect.Pointer && v.IsNil() {
		return ctx
	}
	carrier := metaCarrier{}
	for k, v := range params.GetMeta() {
		if s, ok := v.(string); ok {
			carrier[k] = s
		}
	}
	return prop.Extract(ctx, carrier)
}
