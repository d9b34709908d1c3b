package mcpool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// CallTool calls a tool on a pooled session: Acquire, call, Release. A
// result with IsError set is the tool's own failure and is returned with a
// nil error, as the SDK does.
//
// If the session dies during the call, or the request fails in transit (a
// network error, a 5xx), CallTool retries on
// another session, inside the same ctx, only when that cannot run a tool
// with side effects twice behind the caller's back: the request provably
// never reached the server (the connection was already closed or could not
// be dialled, or the server rejected the session with 404 or 400), or the
// tool's annotations say readOnlyHint or idempotentHint (read from the tool
// catalog, see [Pool.Tool]), or ctx carries [WithRetry]. A call that is
// safe to run twice (read-only, idempotent, WithRetry) is retried up to
// 2×MaxSessions+2 times, each on a session taken afresh (waiting, within
// ctx, while the pool reconnects), so that it rides out a server killed
// again and again; any other call is retried only while every attempt
// provably never ran, up to MaxSessions times (a server that expired all
// its sessions at once). Otherwise, or when the retries are spent or a
// retry finds no session (the server gone, ctx ended while it waited for
// one), it returns a [*SessionLostError] (errors.Is ErrSessionLost, and the
// last attempt's error: ErrServerUnavailable, ErrPoolExhausted).
//
// A 429 Too Many Requests is not a lost session: the request did not run.
// CallTool waits for the server's Retry-After (BackoffInitial if it sent
// none) and tries once more, or returns a [*RateLimitedError] (errors.Is
// ErrRateLimited) at once when ctx would end before the wait does.
//
// Other errors: those of Acquire; ctx's error; the server's JSON-RPC error
// (an unknown tool, bad arguments); a transport error (the pool then probes
// the session); or ErrPoolClosed wrapped with the call's error when Close
// cancelled the call at its drain deadline.
//
// params is not modified, so one value may be shared by concurrent calls.
// (The SDK writes protocol metadata into the params it is given; the pool
// hands it a copy, or a params value reused across sessions of different
// protocol versions would carry the wrong version and race.)
func (p *Pool) CallTool(ctx context.Context, params *mcp.CallToolParams) (res *mcp.CallToolResult, err error) {
	if p.obs.Load() != nil { // observe.go: metrics
		obs := p.startCall(ctx, params)
		defer obs.end(&res, &err)
	}
	params = cloneCallParams(params)
	raw := rawResultOf(ctx) // rawcall.go
	call := func(ctx context.Context, cs *mcp.ClientSession) error {
		var err error
		if raw != nil && p.dialer.raw.takes(cs) {
			res, raw.JSON, err = p.callRaw(ctx, cs, params)
			return err
		}
		res, err = cs.CallTool(ctx, params)
		return err
	}
	o := p.do(ctx, call)
	if o.rateLimited && p.waitRateLimit(ctx, o.err) {
		// A 429 did not run the tool: once, after the server's Retry-After.
		p.counters.retries.Add(1)
		if o = p.do(ctx, call); o.rateLimited {
			o.err.(*RateLimitedError).Retried = true
		}
	}
	if !o.lost {
		return res, o.err
	}
	mayHaveRun, err := o.mayHaveRun, o.err
	retried := false
	var noAnnotations error // set by mayRetry when the tool's definition could not be read
	ctx = context.WithValue(ctx, noAnnotationsKey{}, &noAnnotations)
	// An answer over the frame limit is retried once at most: the same
	// request will likely get the same answer.
	tooLargeSeen := o.tooLarge
	for attempt := 0; !(tooLargeSeen && retried) && p.retryAllowed(ctx, params.Name, attempt, mayHaveRun, err); attempt++ {
		retried = true
		p.counters.retries.Add(1)
		p.log.debug("session lost: retrying the call on another session", "tool", params.Name, "error", err)
		if o = p.do(ctx, call); !o.lost {
			if o.err != nil && noSessionFound(o.err) {
				// The retry found no session (the server is gone, or ctx
				// ended while it waited for one): the call stays lost.
				err = o.err
				break
			}
			return res, o.err
		}
		err, mayHaveRun = o.err, mayHaveRun || o.mayHaveRun
		tooLargeSeen = tooLargeSeen || o.tooLarge
	}
	p.counters.lostCalls.Add(1)
	return nil, &SessionLostError{Tool: params.Name, MayHaveRun: mayHaveRun, Retried: retried, Cause: err, noAnnotations: noAnnotations}
}

// noSessionFound reports whether err is that of an attempt that found no
// session to send the call on. (A bare context error is not: the attempt
// may have sent the call before ctx ended.)
func noSessionFound(err error) bool {
	return errors.Is(err, ErrServerUnavailable) || errors.Is(err, ErrConnectFailed) || errors.Is(err, ErrPoolExhausted)
}

type retryKey struct{}

// WithRetry returns a context under which [Pool.CallTool] retries a call
// once on another session when its session dies, even if the request may
// have reached the server and the tool is not marked read-only or
// idempotent. Use it for calls that are safe to run twice.
func WithRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, retryKey{}, true)
}

// retryAllowed decides whether attempt (0 for the first retry) may go
// ahead after a lost call. A call that provably never ran is retried while
// its sessions were gone (404, closed, EPIPE): when a server forgets all
// idle sessions at once (expiry, restart), the next oldest may be just as
// dead; not after a 400, which may be the request's own fault. A call safe
// to run twice gets more attempts, enough to outlast repeated kills.
func (p *Pool) retryAllowed(ctx context.Context, tool string, attempt int, mayHaveRun bool, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if !mayHaveRun && attempt < p.cfg.MaxSessions && (attempt == 0 || !isUnknownSession400(err)) {
		return true
	}
	return attempt < 2*p.cfg.MaxSessions+2 && p.mayRetry(ctx, tool, true)
}

func (p *Pool) mayRetry(ctx context.Context, tool string, mayHaveRun bool) bool {
	if ctx.Err() != nil {
		return false
	}
	if !mayHaveRun || ctx.Value(retryKey{}) != nil {
		return true
	}
	// The last known definition first: a reconnect may have just emptied
	// the catalog (server-everything sends list_changed on every new
	// session), and fetching it while sessions die would fail.
	if t, ok := p.catalog.tools.lastKnown(tool); ok {
		return t.Annotations != nil && (t.Annotations.ReadOnlyHint || t.Annotations.IdempotentHint)
	}
	t, terr := p.Tool(ctx, tool)
	if terr != nil {
		p.noAnnotations(ctx, terr)
		return false
	}
	return t != nil && t.Annotations != nil && (t.Annotations.ReadOnlyHint || t.Annotations.IdempotentHint)
}

// noAnnotationsKey holds, in a CallTool's context, where mayRetry records
// why the tool's annotations could not be read, for the SessionLostError.
type noAnnotationsKey struct{}

func (p *Pool) noAnnotations(ctx context.Context, err error) {
	if at, ok := ctx.Value(noAnnotationsKey{}).(*error); ok {
		*at = err
	}
}

// Do runs fn with a pooled session, for requests the pool has no helper
// for (prompts, resources, completion…). The ctx given to fn ends when the
// caller's ctx ends or when Close cancels calls at its drain deadline; use
// it for every request fn makes. fn must not keep the session after it
// returns. Do never retries. Its errors are those of CallTool (a dead
// session's error is returned as it is, and the session replaced), or fn's
// own. When fn returns an error that is neither the server's JSON-RPC answer
// nor one the pool knows, the pool asks the SDK whether the session still
// works (a ping on a live session) before Do returns.
func (p *Pool) Do(ctx context.Context, fn func(ctx context.Context, cs *mcp.ClientSession) error) error {
	return p.do(ctx, fn).err
}

// outcome is what do learned of one attempt.
type outcome struct {
	err error
	// lost: the session died under the call, or its request failed in
	// transit; a retry on another session may help.
	lost bool
	// mayHaveRun: the request may have reached the server.
	mayHaveRun bool
	// rateLimited: the server answered 429; err is a *RateLimitedError.
	rateLimited bool
	// tooLarge: the answer passed the frame limit; err matches
	// ErrResponseTooLarge. The same request would get the same answer.
	tooLarge bool
}

// callTrack rides in a call's context down to the pool's HTTP transport,
// which records what became of that call's own request. The SDK retires
// every call pending on a session with the error of whichever request broke
// it (a 404 on another call's POST), so the error alone cannot tell whether
// this call's request was delivered.
type callTrack struct {
	delivered      atomic.Bool  // the server accepted the request (2xx)
	unauthorized   atomic.Bool  // it got 401 even after a token refresh
	rateLimited    atomic.Bool  // it got 429
	retryAfter     atomic.Int64 // the 429's Retry-After, in nanoseconds
	unknownSession atomic.Bool  // it got 400 for an unknown session: not run
	noToken        atomic.Bool  // its TokenFunc failed: not sent
	// tooLarge is set when its answer passed frameLimit (connect.go);
	// cancel then ends the call at once with that cause.
	tooLarge atomic.Bool
	cancel   context.CancelCauseFunc
}

// overLimit fails the call: its answer passed frameLimit (size bytes, or
// frameLimit+1 when the size is not known).
func (tr *callTrack) overLimit(size int64) {
	tr.tooLarge.Store(true)
	if tr.cancel != nil {
		tr.cancel(tooLarge(size))
	}
}

type trackKey struct{}

func trackOf(ctx context.Context) *callTrack {
	tr, _ := ctx.Value(trackKey{}).(*callTrack)
	return tr
}

// do runs fn on a leased session and classifies its error. The session's
// fate is settled before the lease is released, so that a dead session never
// serves another call.
func (p *Pool) do(ctx context.Context, fn func(ctx context.Context, cs *mcp.ClientSession) error) outcome {
	l, err := p.Acquire(ctx)
	if err != nil {
		return outcome{err: err}
	}
	defer l.Release()
	s := l.s
	tr := &callTrack{}
	cctx, cancelCause := context.WithCancelCause(context.WithValue(ctx, trackKey{}, tr))
	tr.cancel = cancelCause
	cancel := func() { cancelCause(nil) }
	stop := context.AfterFunc(s.ctx, cancel)
	err = fn(cctx, s.cs)
	stop()
	cancel()
	if err == nil {
		s.served.Store(true)
		return outcome{}
	}
	p.counters.errors.Add(1)
	mayHaveRun := (tr.delivered.Load() || !neverSent(err)) && !tr.unknownSession.Load()
	if tr.tooLarge.Load() || isFrameTooLarge(err) {
		// The answer passed the frame limit: the session may be out of
		// step (the rest of the answer unread), so it is replaced.
		if tr.tooLarge.Load() {
			err = context.Cause(cctx) // the SDK saw only the cancellation
		}
		p.markDead(s, err)
		return outcome{err: tooLargeCause(err), lost: true, mayHaveRun: true, tooLarge: true}
	}
	switch {
	case (tr.noToken.Load() && !tr.delivered.Load()) || isTokenError(err):
		// The token could not be had, so the request never left the
		// process: the session is fine and the call did not run.
		return outcome{err: fmt.Errorf("%w: request not sent: %w", ErrUnauthorized, err)}
	case tr.unauthorized.Load():
		// The server refused the token and the SDK broke the session; the
		// request did not run. Retrying would only be refused again.
		p.markDead(s, err)
		return outcome{err: fmt.Errorf("%w: the server refused the token (401): %w", ErrUnauthorized, err)}
	case tr.rateLimited.Load() || isRateLimited(err):
		// The server refused the request and the session is fine.
		return outcome{err: &RateLimitedError{RetryAfter: time.Duration(tr.retryAfter.Load()), Cause: err}, rateLimited: true}
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// A stalled server looks like this: check the session once idle.
			p.suspect(s)
		}
	case s.ctx.Err() != nil:
		return outcome{err: fmt.Errorf("%w: call cancelled at the drain deadline: %w", ErrPoolClosed, err)}
	case isSessionGone(err) || breaksSession(err):
		p.markDead(s, err)
		return outcome{err: err, lost: true, mayHaveRun: mayHaveRun}
	case isTransportFailure(err):
		p.suspect(s)
		return outcome{err: err, lost: true, mayHaveRun: mayHaveRun}
	case !isServerAnswer(err):
		if p.isLeaving(s) || brokenNow(ctx, s.cs, p.cfg.PingTimeout) {
			// The session died meanwhile (its Wait returned), or the SDK
			// no longer uses it: the call went down with it.
			p.markDead(s, err)
			return outcome{err: err, lost: true, mayHaveRun: mayHaveRun}
		}
		p.suspect(s)
	}
	return outcome{err: err}
}

func cloneCallParams(in *mcp.CallToolParams) *mcp.CallToolParams {
	if in == nil {
		return &mcp.CallToolParams{Arguments: map[string]any{}}
	}
	out := *in
	out.Meta = maps.Clone(in.Meta)
	if out.Arguments == nil {
		out.Arguments = map[string]any{}
	}
	return &out
}

// waitRateLimit waits out a 429's Retry-After (BackoffInitial when the
// server sent none) within ctx, and reports whether a retry may follow:
// false at once when ctx would end first, so that the caller gets the
// RateLimitedError by its deadline rather than after it.
func (p *Pool) waitRateLimit(ctx context.Context, err error) bool {
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		return false
	}
	wait := rl.RetryAfter
	if wait <= 0 {
		wait = p.cfg.BackoffInitial
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return false
	}
	return sleepCtx(ctx, wait) == nil
}
