package mcpool

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Observer receives a pool's events, for metrics and tracing: the
// subpackages prom (Prometheus) and otel (OpenTelemetry) are built on it.
// Attach one with [Pool.Observe] or [Keyed.Observe]. Every field is
// optional.
//
// The funcs run on the goroutine where the event happens, never while the
// pool's lock is held. They must be quick, safe for concurrent use, and must
// not block: they sit on the path of every Acquire and call. A pool with no
// Observer (and no LeakThreshold) pays one atomic load per Acquire, Release
// and CallTool; each MCP request also feeds the health score (a short
// lock, never on the Acquire path).
type Observer struct {
	// AcquireStart runs when Acquire begins. The context it returns (nil
	// means ctx) is the one Acquire goes on with and AcquireEnd receives: a
	// tracer starts a span here.
	AcquireStart func(ctx context.Context) context.Context
	// AcquireEnd runs when Acquire returns, with its wait and error.
	AcquireEnd func(ctx context.Context, e AcquireEvent)
	// Release runs when a lease taken while this observer was attached is
	// released (once per lease: a repeated Release is not reported).
	Release func(e ReleaseEvent)
	// CallEnd runs when [Pool.CallTool] returns, retries included: the
	// caller's view of the call.
	CallEnd func(ctx context.Context, e CallEvent)
	// RequestStart runs before each MCP request that a session of the pool
	// sends (initialize, server/discover, tools/call, tools/list, ping…;
	// not notifications), from the go-sdk's sending middleware, whether
	// the request comes from a Pool helper or from a leased session used
	// directly. It may add entries to the request's _meta (e.Params), as
	// trace propagation does (MCP SEP-414). The context it returns (nil
	// means ctx) carries the request and is given to RequestEnd.
	RequestStart func(ctx context.Context, e *RequestEvent) context.Context
	// RequestEnd runs when that request returns; e.Duration, e.Result and
	// e.Err are then set.
	RequestEnd func(ctx context.Context, e *RequestEvent)
	// Connect runs after each connect attempt, successful or not.
	Connect func(e ConnectEvent)
	// SessionClosed runs when a session of the pool has been closed.
	SessionClosed func(e SessionEvent)
}

// AcquireEvent describes one [Pool.Acquire].
type AcquireEvent struct {
	Start time.Time     // when Acquire was called
	Wait  time.Duration // how long it took to return
	// SessionID is the pool's id of the leased session (see
	// Lease.SessionID); 0 when Err is set.
	SessionID uint64
	Err       error // nil on success
}

// ReleaseEvent describes one lease released.
type ReleaseEvent struct {
	SessionID uint64
	Held      time.Duration // from the end of Acquire to Release
}

// CallEvent describes one [Pool.CallTool], retries included.
type CallEvent struct {
	Tool     string // the tool name as the caller gave it
	Start    time.Time
	Duration time.Duration
	Result   *mcp.CallToolResult // nil on error
	Err      error
	// Outcome is CallOutcome(Result, Err): a small fixed set of values,
	// fit for a metric label.
	Outcome string
}

// RequestEvent describes one MCP request sent by a session of the pool.
// The pool fills every field but Duration, Result and Err before
// RequestStart, and those three before RequestEnd.
type RequestEvent struct {
	Method string // the JSON-RPC method, for example "tools/call"
	// Name is the request's target: the tool name of tools/call, the prompt
	// name of prompts/get, the URI of resources/read; "" for the others.
	Name string
	// Params are the request's params, sent after RequestStart returns.
	// They are a shallow copy private to this request, so RequestStart may
	// give them a new _meta (Params.SetMeta) even when the caller shares
	// one params value between calls; the _meta map itself is still the
	// caller's: copy it, never change it in place.
	Params  mcp.Params
	Session *mcp.ClientSession
	// SessionID is the MCP session id (Mcp-Session-Id); "" for stdio,
	// in-memory and stateless HTTP sessions, and under 2026-07-28, which
	// has no sessions.
	SessionID string
	// ProtocolVersion is the session's negotiated version; "" while it
	// connects.
	ProtocolVersion string
	// Transport is "tcp" for HTTP servers and "pipe" for stdio (the
	// network.transport values of OpenTelemetry); "" for a custom transport.
	Transport     string
	ServerAddress string // host of URL or SSEURL; "" otherwise
	ServerPort    int    // port of URL or SSEURL (the scheme's default if none); 0 otherwise

	Start    time.Time
	Duration time.Duration
	Result   mcp.Result
	Err      error
}

// ConnectEvent describes one connect attempt.
type ConnectEvent struct {
	Duration time.Duration // dialling and the initialize exchange
	Err      error         // nil when a session connected
}

// SessionEvent describes a session closed by the pool.
type SessionEvent struct {
	SessionID uint64 // the pool's id; 0 for a session closed before it joined the pool
	// Reason is why it closed: "dead" (it ended, or failed a call or a
	// health check), "lifetime" (MaxSessionLifetime), "idle" (MaxIdleTime)
	// or "closed" (the pool closed).
	Reason string
	// Lifetime is how long the session lived, from its connect to its
	// close.
	Lifetime time.Duration
}

// The outcomes of CallOutcome.
const (
	OutcomeOK           = "ok"           // the tool answered
	OutcomeToolError    = "tool_error"   // the tool answered with isError set
	OutcomeTimeout      = "timeout"      // the caller's deadline passed during the call
	OutcomeCanceled     = "canceled"     // the caller cancelled
	OutcomeExhausted    = "exhausted"    // ErrPoolExhausted: no room in time
	OutcomeUnavailable  = "unavailable"  // ErrServerUnavailable: the breaker is open
	OutcomeLost         = "lost"         // ErrSessionLost
	OutcomeClosed       = "closed"       // ErrPoolClosed
	OutcomeUnauthorized = "unauthorized" // ErrUnauthorized
	OutcomeError        = "error"        // any other error: a JSON-RPC error, a transport failure
)

// CallOutcome sums up a call's result in one word from a small fixed set
// (the Outcome… constants), for metric labels and span attributes.
func CallOutcome(res *mcp.CallToolResult, err error) string {
	switch {
	case err == nil && res != nil && res.IsError:
		return OutcomeToolError
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrSessionLost):
		return OutcomeLost // first: a lost call's retry may have met the others
	case errors.Is(err, ErrPoolExhausted):
		return OutcomeExhausted
	case errors.Is(err, ErrServerUnavailable):
		return OutcomeUnavailable
	case errors.Is(err, ErrPoolClosed):
		return OutcomeClosed
	case errors.Is(err, ErrUnauthorized):
		return OutcomeUnauthorized
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeError
}

// Observe attaches an observer to the pool. Events from then on reach it;
// attach before Start to see every connect. Observe is safe for concurrent
// use; observers cannot be detached (close the pool instead).
func (p *Pool) Observe(o Observer) {
	p.obsMu.Lock()
	defer p.obsMu.Unlock()
	next := &observer{leases: p.leases}
	if cur := p.obs.Load(); cur != nil {
		next.list = append(next.list, cur.list...)
	}
	next.list = append(next.list, o)
	for _, o := range next.list {
		next.release = next.release || o.Release != nil
		next.request = next.request || o.RequestStart != nil || o.RequestEnd != nil
	}
	next.track = next.release || p.leases.threshold > 0
	p.obs.Store(next)
}

// observer is the pool's set of observers, replaced whole by Observe (the
// hot paths load it with one atomic read). It exists, with an empty list,
// when only LeakThreshold needs the lease hooks.
type observer struct {
	list    []Observer
	leases  *leaseTracker
	track   bool // leases are tracked: LeakThreshold or a Release observer
	release bool
	request bool
}

// initObserve sets up leak detection and the request hook; New calls it.
func (p *Pool) initObserve() {
	p.target = targetInfo(p.cfg)
	p.leases = newLeaseTracker(p.cfg.LeakThreshold, p.log)
	if p.cfg.LeakThreshold > 0 {
		p.obs.Store(&observer{leases: p.leases, track: true})
	}
	p.dialer.client.AddSendingMiddleware(p.observeRequests)
}

func (o *observer) acquireStart(ctx context.Context) context.Context {
	for _, x := range o.list {
		if x.AcquireStart != nil {
			if c := x.AcquireStart(ctx); c != nil {
				ctx = c
			}
		}
	}
	return ctx
}

// acquireEnd runs deferred in Acquire, on the acquirer's goroutine: the
// leak tracker's stack is the acquirer's.
func (o *observer) acquireEnd(ctx context.Context, start time.Time, l *Lease, err *error) {
	now := time.Now()
	e := AcquireEvent{Start: start, Wait: now.Sub(start), Err: *err}
	if *err == nil && l.s != nil {
		e.SessionID = l.s.id
		if o.track {
			o.leases.acquired(l, now)
		}
	}
	for _, x := range o.list {
		if x.AcquireEnd != nil {
			x.AcquireEnd(ctx, e)
		}
	}
}

func (o *observer) released(l *Lease) {
	if !o.track {
		return
	}
	held, ok := o.leases.released(l.gen)
	if !ok || !o.release {
		return
	}
	e := ReleaseEvent{SessionID: l.s.id, Held: held}
	for _, x := range o.list {
		if x.Release != nil {
			x.Release(e)
		}
	}
}

// callObs is CallTool's observation: startCall begins it, end reports it.
type callObs struct {
	p     *Pool
	tool  string
	start time.Time
	ctx   context.Context
}

func (p *Pool) startCall(ctx context.Context, params *mcp.CallToolParams) callObs {
	c := callObs{p: p, start: time.Now(), ctx: ctx}
	if params != nil {
		c.tool = params.Name
	}
	return c
}

func (c *callObs) end(res **mcp.CallToolResult, err *error) {
	o := c.p.obs.Load()
	if o == nil {
		return
	}
	e := CallEvent{Tool: c.tool, Start: c.start, Duration: time.Since(c.start), Result: *res, Err: *err}
	e.Outcome = CallOutcome(e.Result, e.Err)
	for _, x := range o.list {
		if x.CallEnd != nil {
			x.CallEnd(c.ctx, e)
		}
	}
}

// observeConnect reports a connect attempt to the health score and the
// observers.
func (p *Pool) observeConnect(start time.Time, err error) {
	if p.ctx.Err() != nil {
		return // cut short by Close: not the server's doing
	}
	p.health.connect(err == nil)
	o := p.obs.Load()
	if o == nil {
		return
	}
	e := ConnectEvent{Duration: time.Since(start), Err: err}
	for _, x := range o.list {
		if x.Connect != nil {
			x.Connect(e)
		}
	}
}

// observeClosed reports a closed session. Its reason was set when it left
// service; a session closed without one went down with the pool.
func (p *Pool) observeClosed(s *session) {
	o := p.obs.Load()
	if o == nil {
		return
	}
	e := SessionEvent{SessionID: s.id, Reason: s.closeReason, Lifetime: time.Since(s.created)}
	if e.Reason == "" {
		e.Reason = "closed"
	}
	for _, x := range o.list {
		if x.SessionClosed != nil {
			x.SessionClosed(e)
		}
	}
}

// observeRequests is the go-sdk sending middleware of the pool's client: it
// feeds the health score and the observers' request hooks.
func (p *Pool) observeRequests(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if strings.HasPrefix(method, "notifications/") {
			return next(ctx, method, req)
		}
		return p.observeRequest(ctx, method, req, next)
	}
}

// observeRequest runs next for a request to the server, telling the
// observers and the health score; requests the pool sends itself
// (rawcall.go) come through here as the SDK's do.
func (p *Pool) observeRequest(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	o := p.obs.Load()
	var e *RequestEvent
	start := time.Now()
	if o != nil && o.request {
		e = p.requestEvent(method, req, start)
		for _, x := range o.list {
			if x.RequestStart != nil {
				if c := x.RequestStart(ctx, e); c != nil {
					ctx = c
				}
			}
		}
	}
	res, err := next(ctx, method, req)
	d := time.Since(start)
	if method != "initialize" && method != "server/discover" && !errors.Is(ctx.Err(), context.Canceled) {
		// A JSON-RPC error is the server answering: healthy. A
		// deadline passed is a server too slow to answer; a caller
		// (or Close) cancelling says nothing of the server.
		p.health.request(method == "tools/call", err == nil || isServerAnswer(err), d)
	}
	if e != nil {
		e.Duration, e.Result, e.Err = d, res, err
		for _, x := range o.list {
			if x.RequestEnd != nil {
				x.RequestEnd(ctx, e)
			}
		}
	}
	return res, err
}

func (p *Pool) requestEvent(method string, req mcp.Request, start time.Time) *RequestEvent {
	e := &RequestEvent{Method: method, Params: privateParams(req), Start: start,
		Transport: p.target.transport, ServerAddress: p.target.address, ServerPort: p.target.port}
	if cs, ok := req.GetSession().(*mcp.ClientSession); ok && cs != nil {
		e.Session = cs
		e.SessionID = cs.ID()
		if ir := cs.InitializeResult(); ir != nil {
			e.ProtocolVersion = ir.ProtocolVersion
		}
	}
	switch prm := e.Params.(type) {
	case *mcp.CallToolParams:
		e.Name = prm.Name
	case *mcp.GetPromptParams:
		e.Name = prm.Name
	case *mcp.ReadResourceParams:
		e.Name = prm.URI
	}
	return e
}

// target is what observers learn of the server: never a credential.
type target struct {
	transport string
	address   string
	port      int
}

func targetInfo(s *settings) target {
	raw := s.URL
	if raw == "" {
		raw = s.SSEURL
	}
	switch {
	case raw != "":
		u, err := url.Parse(raw)
		if err != nil {
			return target{transport: "tcp"}
		}
		t := target{transport: "tcp", address: u.Hostname()}
		switch port := u.Port(); {
		case port != "":
			t.port, _ = strconv.Atoi(port)
		case u.Scheme == "https":
			t.port = 443
		default:
			t.port = 80
		}
		return t
	case s.Command != nil:
		return target{transport: "pipe"}
	}
	return target{}
}

// observeStats adds the observation figures to a Stats snapshot.
func (p *Pool) observeStats(st *Stats) {
	st.LeakedLeases = p.leases.leaked.Load()
	p.health.judge(st, p.cfg.MinSessions)
}

// privateParams gives a request a shallow copy of its params and returns
// it, so that observers may set _meta without writing to a params value the
// caller shares between concurrent calls. Requests are the go-sdk's
// *ClientRequest[P], made afresh for each call, whose Params field holds a
// pointer; anything else is returned as it is.
func privateParams(req mcp.Request) mcp.Params {
	v := reflect.ValueOf(req)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return req.GetParams()
	}
	f := v.Elem().FieldByName("Params")
	if !f.IsValid() || !f.CanSet() {
		return req.GetParams()
	}
	p := f
	if p.Kind() == reflect.Interface {
		// The SDK builds ClientRequest[Params]: the field is an interface.
		p = p.Elem()
	}
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return req.GetParams()
	}
	cp := reflect.New(p.Type().Elem())
	cp.Elem().Set(p.Elem())
	f.Set(cp)
	return req.GetParams()
}
