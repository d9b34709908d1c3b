package mcpool

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Sentinel errors. Test for them with errors.Is; the concrete errors
// ([*ConfigError], [*ExhaustedError], [*ConnectError]) carry the details.
var (
	// ErrInvalidConfig is matched by every error New returns for a bad Config.
	ErrInvalidConfig = errors.New("mcpool: invalid config")
	// ErrPoolClosed is returned by Acquire and the call helpers once Close
	// has begun, and to callers still waiting when it begins.
	ErrPoolClosed = errors.New("mcpool: pool closed")
	// ErrPoolExhausted means no session had room before the caller's context
	// or AcquireTimeout ended. The error is an [*ExhaustedError] with the
	// pool's figures at that moment.
	ErrPoolExhausted = errors.New("mcpool: pool exhausted")
	// ErrConnectFailed means a new session could not be connected. The error
	// is a [*ConnectError] that wraps the transport's or the server's cause.
	ErrConnectFailed = errors.New("mcpool: connect failed")
	// ErrServerUnavailable means the circuit breaker is open: connects have
	// failed for at least BreakerOpenAfter (and FailureThreshold times in a
	// row), or failed for good (see Config.FailureThreshold), the pool has
	// no session, and it fails at once instead of letting callers wait out
	// their timeouts.
	// The error is an [*UnavailableError] wrapping the last connect failure.
	ErrServerUnavailable = errors.New("mcpool: server unavailable")
	// ErrSessionLost means a call's session died under it and the call was
	// not retried, because it may have reached the server and the tool is
	// not marked read-only or idempotent (see [Pool.CallTool]). The error is
	// a [*SessionLostError].
	ErrSessionLost = errors.New("mcpool: session lost")
	// ErrRateLimited means the server answered 429 Too Many Requests: it
	// refused the request (which did not run) and the session is fine. The
	// error is a [*RateLimitedError] carrying the server's Retry-After.
	ErrRateLimited = errors.New("mcpool: rate limited")
	// ErrListTooLong means a paginated list (tools, prompts, resources) did
	// not end within Config.MaxListPages pages, or the server sent a cursor
	// it had already sent: the fetch stopped rather than grow without bound.
	// The error is a [*ListTooLongError].
	ErrListTooLong = errors.New("mcpool: list did not end")
	// ErrMisconfigured means a connect failed in a way no retry will cure:
	// the pool reached something, but not an MCP server it may use. It is
	// matched by a [*ConnectError] whose Permanent field is set, and so by
	// the [*UnavailableError] that Start and Acquire return at once for it
	// (the circuit breaker opens on the first such failure). The message
	// says what was seen and what to check. The permanent failures:
	//   - the executable is not found or not executable, or Command.Dir is
	//     missing;
	//   - a stdio server writes something other than JSON-RPC on its stdout
	//     before it answers initialize (a banner, a log line: the message
	//     quotes its first 100 bytes, escaped), or a line over the 16 MB
	//     frame limit; servers must log to stderr;
	//   - an HTTP answer that is not MCP: a 2xx whose content type is
	//     neither application/json nor text/event-stream (an HTML page, a
	//     text/plain answer: the message names the content type and quotes
	//     the first bytes), a redirect loop (the message gives the chain),
	//     404 at the URL (nothing serves MCP there), 401 or 403 (see
	//     ErrUnauthorized).
	//
	// Timeouts, refused or reset connections, EOF, a child that exits,
	// 5xx and 429 are transient: connects back off and retry. So is a 404
	// to a request that carries the new session's Mcp-Session-Id (say
	// notifications/initialized): the server ended that session, as it may
	// at any time (MCP spec 2025-11-25, "Session Management").
	ErrMisconfigured = errors.New("mcpool: server misconfigured")
	// ErrResponseTooLarge means an answer passed the 16 MB frame limit (the
	// SDK's limit for one stdio line or server-sent event, which the pool
	// applies to JSON answers over HTTP too). The call fails as soon as the
	// limit is passed, without reading the rest; the session, which cannot
	// be trusted to be in step any more, is replaced. The call's error is a
	// [*SessionLostError] that matches it.
	ErrResponseTooLarge = errors.New("mcpool: response too large")
	// ErrConnectQueueFull means a connect gave up its place in the
	// ConnectLimiter's queue: its turn would not have come within
	// Config.ConnectQueueWait. The machine is starting more servers than it
	// can; nothing was sent to the server. Retry later (with backoff), or
	// raise ConnectQueueWait or the limiter's cap.
	ErrConnectQueueFull = errors.New("mcpool: connect queue full")
)

// tooLargeError is an answer over frameLimit. It matches ErrResponseTooLarge.
type tooLargeError struct{ size int64 }

func tooLarge(size int64) error { return &tooLargeError{size: size} }

// tooLargeText starts tooLargeError's message; the SDK keeps only the text
// of the error that ended a stdio session's read loop.
const tooLargeText = "response too large"

// Error gives the limit and what to do.
func (e *tooLargeError) Error() string {
	size := "more than"
	if e.size > frameLimit+1 {
		size = fmt.Sprintf("%d bytes, over", e.size)
	}
	return fmt.Sprintf(tooLargeText+": the server's answer was %s the %d MB frame limit; ask the tool for less (a page, a range) or have it return a resource link", size, frameLimit>>20)
}

// Is reports whether target is ErrResponseTooLarge.
func (e *tooLargeError) Is(target error) bool { return target == ErrResponseTooLarge }

// RateLimitedError reports a request the server refused with 429 Too Many
// Requests. It matches ErrRateLimited and unwraps to the SDK's error. The
// session is not lost and the request did not run: [Pool.CallTool] retries
// it once after RetryAfter when the caller's ctx allows that wait, and
// otherwise returns this error at once.
type RateLimitedError struct {
	// RetryAfter is the server's Retry-After (delay-seconds or an HTTP date,
	// RFC 9110 section 10.2.3), capped at an hour; 0 if it sent none.
	RetryAfter time.Duration
	// Retried is true when the pool waited and retried, and was refused again.
	Retried bool
	Cause   error
}

// Error says the server limits the rate and when it asked to come back.
func (e *RateLimitedError) Error() string {
	after := "it sent no Retry-After"
	if e.RetryAfter > 0 {
		after = fmt.Sprintf("Retry-After %v", e.RetryAfter)
	}
	if e.Retried {
		after += "; refused again after waiting for it"
	}
	return fmt.Sprintf("mcpool: rate limited: the server answered 429 Too Many Requests (%s): %s", after, unprefixed(e.Cause))
}

// Unwrap returns ErrRateLimited and the cause.
func (e *RateLimitedError) Unwrap() []error { return []error{ErrRateLimited, e.Cause} }

// ListTooLongError reports a runaway paginated list. It matches ErrListTooLong.
type ListTooLongError struct {
	Kind  string // "tools", "prompts" or "resources"
	Pages int    // pages fetched before the pool stopped
	// RepeatedCursor is the cursor the server sent twice, if that is why
	// the pool stopped; empty when the page limit was reached.
	RepeatedCursor string
}

// Error says why the listing stopped and what to do.
func (e *ListTooLongError) Error() string {
	if e.RepeatedCursor != "" {
		return fmt.Sprintf("mcpool: list did not end: the server sent %s cursor %q twice (after %d pages): its pagination loops",
			e.Kind, e.RepeatedCursor, e.Pages)
	}
	return fmt.Sprintf("mcpool: list did not end: %s still had a next cursor after %d pages (Config.MaxListPages); raise it if the server really lists that much", e.Kind, e.Pages)
}

// Is reports whether target is ErrListTooLong.
func (e *ListTooLongError) Is(target error) bool { return target == ErrListTooLong }

// UnavailableError is returned while the circuit breaker is open. It matches
// ErrServerUnavailable and unwraps to the last connect failure (a
// [*ConnectError], so errors.Is(err, ErrConnectFailed) holds too).
type UnavailableError struct {
	Failures int           // connects failed in a row
	RetryIn  time.Duration // until the breaker lets a probe connect through
	Cause    error
}

// Error says how many connects failed, when the breaker lets one through, and the cause.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("mcpool: server unavailable after %d failed connects (next try in %v): %s",
		e.Failures, e.RetryIn.Round(time.Millisecond), unprefixed(e.Cause))
}

// Unwrap returns ErrServerUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrServerUnavailable, e.Cause} }

// SessionLostError reports a call whose session died under it and that the
// pool did not retry. It matches ErrSessionLost and unwraps to the cause.
type SessionLostError struct {
	Tool string // the tool called
	// MayHaveRun is true when the request may have reached the server before
	// the session died, so the tool may or may not have run.
	MayHaveRun bool
	// Retried is true when the pool retried the call on another session
	// and that failed too; false when retrying was not safe.
	Retried bool
	Cause   error

	// noAnnotations: why the tool's definition, which says whether it is
	// safe to run twice, could not be read (the catalog could not be
	// fetched), when that is why it was not retried.
	noAnnotations error
}

// Error names the tool, whether it may have run, and why it was not retried.
func (e *SessionLostError) Error() string {
	why := "not retried: the tool is not marked read-only or idempotent (see mcpool.WithRetry)"
	switch {
	case e.Retried:
		why = "the retry on another session failed too"
	case e.noAnnotations != nil:
		why = "not retried: whether the tool is safe to run twice is unknown, its definition could not be read (" +
			unprefixed(e.noAnnotations) + "); see mcpool.WithRetry"
	}
	return fmt.Sprintf("mcpool: session lost during call to %q (may have run: %v; %s): %s",
		e.Tool, e.MayHaveRun, why, unprefixed(e.Cause))
}

// Unwrap returns ErrSessionLost and the cause.
func (e *SessionLostError) Unwrap() []error { return []error{ErrSessionLost, e.Cause} }

// ConfigError reports one bad [Config] field. It matches ErrInvalidConfig.
type ConfigError struct {
	Field  string // the Config field, e.g. "MaxSessions" or "Command.Path"
	Reason string // what is wrong with it and, where useful, what to do
}

func configErr(field, reason string) error { return &ConfigError{Field: field, Reason: reason} }

// Error names the field and what is wrong with it.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("mcpool: invalid config: %s %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// ExhaustedError is returned when an acquire gave up waiting for room. It
// matches ErrPoolExhausted and also the context error that ended the wait
// (context.DeadlineExceeded or context.Canceled), so both errors.Is tests work.
type ExhaustedError struct {
	Sessions      int   // sessions connected when the wait ended
	Connecting    int   // sessions still connecting
	MaxSessions   int   // the pool's cap
	CallsInFlight int   // calls (leases) held across the pool
	Waiters       int   // other callers still waiting
	Waited        int64 // how long this caller waited, in nanoseconds
	Cause         error // the context error that ended the wait
}

// Error gives the pool's figures when the wait ended and what to raise.
func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("mcpool: pool exhausted after %.1fms (%v): sessions %d/%d (+%d connecting), calls in flight %d, waiters %d; raise MaxSessions or MaxCallsPerSession, or AcquireTimeout",
		float64(e.Waited)/1e6, e.Cause, e.Sessions, e.MaxSessions, e.Connecting, e.CallsInFlight, e.Waiters)
}

// Unwrap returns ErrPoolExhausted and the context error.
func (e *ExhaustedError) Unwrap() []error { return []error{ErrPoolExhausted, e.Cause} }

// ConnectError reports a failed connect. It matches ErrConnectFailed and
// unwraps to the cause (a dial error, an exec error, a JSON-RPC error from
// initialize…). A connect cut short by ConnectTimeout matches
// context.DeadlineExceeded and names the setting. A permanent failure (see
// ErrMisconfigured: the pool reached something that is not an MCP server it
// may use) has Permanent set and matches ErrMisconfigured; its message says
// what was seen (the first bytes of a stdio server's stray output, an HTTP
// answer's status, content type and first bytes, a redirect chain) and what
// to check. Any other failure is transient and retried with backoff.
type ConnectError struct {
	Target string // where the pool tried to connect: a URL or a command line
	Cause  error
	// Permanent is true when retrying cannot help (see ErrMisconfigured):
	// the circuit breaker opens at once and Start returns.
	Permanent bool
	// Exit is how a stdio server exited when it exited during the connect,
	// or before its session proved itself (served a call, passed a health
	// check or lived a second): its exit status, or the signal that ended
	// it; nil otherwise.
	Exit *os.ProcessState
	// Stderr is the end of what a stdio server that exited so wrote to
	// its standard error: at most the last 4 KB, from a line start when
	// cut. Everything it wrote also went to Command.Stderr.
	Stderr string
}

// Error names the target (without credentials) and the cause, and for a
// stdio server that exited, its exit status and the end of its stderr.
func (e *ConnectError) Error() string {
	msg := fmt.Sprintf("mcpool: connect to %s failed: %s", e.Target, unprefixed(e.Cause))
	if e.Exit != nil {
		msg += fmt.Sprintf("; the server exited (%v)", e.Exit)
	}
	if e.Stderr != "" {
		msg += "; its stderr ends with:\n" + e.Stderr
	}
	return msg
}

// Unwrap returns ErrConnectFailed and the cause, and ErrMisconfigured when
// the failure is permanent.
func (e *ConnectError) Unwrap() []error {
	if e.Permanent {
		return []error{ErrConnectFailed, ErrMisconfigured, e.Cause}
	}
	return []error{ErrConnectFailed, e.Cause}
}
