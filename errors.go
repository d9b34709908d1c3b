package mcpool

import (
	"errors"
	"fmt"
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
)

// ConfigError reports one bad [Config] field. It matches ErrInvalidConfig.
type ConfigError struct {
	Field  string // the Config field, e.g. "MaxSessions" or "Command.Path"
	Reason string // what is wrong with it and, where useful, what to do
}

func configErr(field, reason string) error { return &ConfigError{Field: field, Reason: reason} }

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

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("mcpool: pool exhausted after %.1fms (%v): sessions %d/%d (+%d connecting), calls in flight %d, waiters %d; raise MaxSessions or MaxCallsPerSession, or AcquireTimeout",
		float64(e.Waited)/1e6, e.Cause, e.Sessions, e.MaxSessions, e.Connecting, e.CallsInFlight, e.Waiters)
}

// Unwrap returns ErrPoolExhausted and the context error.
func (e *ExhaustedError) Unwrap() []error { return []error{ErrPoolExhausted, e.Cause} }

// ConnectError reports a failed connect. It matches ErrConnectFailed and
// unwraps to the cause (a dial error, an exec error, a JSON-RPC error from
// initialize, context.DeadlineExceeded after ConnectTimeout…).
type ConnectError struct {
	Target string // where the pool tried to connect: a URL or a command line
	Cause  error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("mcpool: connect to %s failed: %v", e.Target, e.Cause)
}

// Unwrap returns ErrConnectFailed and the cause.
func (e *ConnectError) Unwrap() []error { return []error{ErrConnectFailed, e.Cause} }
