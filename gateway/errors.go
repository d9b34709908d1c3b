package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// JSON-RPC error codes the gateway answers with, from the range JSON-RPC 2.0
// leaves to implementations (-32000 to -32099). Each error's data is an
// [ErrorData].
const (
	// CodeOverloaded: the gateway refused the call at once because its caps
	// on calls in flight and on queued callers were reached. Nothing was
	// sent upstream: retry after ErrorData.RetryAfterMs, with backoff and
	// jitter, or lower the client's concurrency.
	CodeOverloaded = -32029
	// CodeUnavailable: the server cannot take calls now: its circuit
	// breaker is open after failed connects, or the gateway is shutting
	// down. Nothing was sent upstream: retry after ErrorData.RetryAfterMs
	// (for a shutdown, on another gateway replica). Except with reason
	// "draining" and RetryAfterMs 0: the call was in flight when the
	// gateway's drain ended, and was cancelled (the server was told); it may
	// have taken effect there, so retry only what is safe to repeat. With reason
	// "misconfigured" the gateway's connects to the server meet something
	// no retry cures (its program cannot be started, its URL answers a web
	// page or 404, the gateway's own credentials are refused; never for
	// ModePassthrough): RetryAfterMs is 0, do not retry.
	CodeUnavailable = -32053
	// CodeUnknownName: no server owns the tool or prompt name or resource
	// URI. ErrorData.Known lists the servers the caller may see.
	CodeUnknownName = -32044
	// CodeUnauthorized: a passthrough server needs the caller's
	// credentials and the request carried none, or the server refused them.
	CodeUnauthorized = -32041
)

// ErrorData is the data of the gateway's JSON-RPC errors.
type ErrorData struct {
	Server       string   `json:"server,omitempty"`       // the server the call was for
	Reason       string   `json:"reason"`                 // "overloaded", "rate_limited", "unavailable", "misconfigured", "draining", "unknown", "ambiguous", "unauthorized", "exchange_failed", "session_lost"
	RetryAfterMs int64    `json:"retryAfterMs,omitempty"` // when a retry may succeed; 0 means do not retry as is
	Known        []string `json:"known,omitempty"`        // for unknown names: the servers the caller may see (see Server.Access)
}

func rpcError(code int64, msg string, data ErrorData) error {
	raw, _ := json.Marshal(data)
	return &jsonrpc.Error{Code: code, Message: msg, Data: raw}
}

func overloaded(server, why string, retry time.Duration) error {
	return rpcError(CodeOverloaded, fmt.Sprintf("gateway overloaded: %s; nothing was sent to %s, retry in %v with backoff", why, server, retry),
		ErrorData{Server: server, Reason: "overloaded", RetryAfterMs: retry.Milliseconds()})
}

const drainingRefused = "gateway is shutting down: the call was not started; retry on another gateway"

func draining(server string) error {
	return rpcError(CodeUnavailable, drainingRefused,
		ErrorData{Server: server, Reason: "draining", RetryAfterMs: 1000})
}

// errDrainEnded is the cause with which the drain's end (or Close)
// cancels the calls still in flight.
var errDrainEnded = errors.New("gateway: shutting down: the drain ended with the call in flight")

// drainCancelled is the answer to a call to server that the drain's end
// cancelled.
func drainCancelled(server string) error {
	return rpcError(CodeUnavailable, "gateway is shutting down: the call was still running when its drain ended, and was cancelled; it had been sent to "+server+" and may have taken effect there",
		ErrorData{Server: server, Reason: "draining"})
}

// drainEnded is the answer to a call to server that the drain's end
// cancelled: drainCancelled when the call may have reached the server
// (sent: the upstream was asked, and its error, upErr, is not one of a
// call that found no session), else draining (not started: retry).
func drainEnded(server string, sent bool, upErr error) error {
	var lost *mcpool.SessionLostError
	if !sent || !errors.As(upErr, &lost) && (errors.Is(upErr, mcpool.ErrPoolExhausted) || errors.Is(upErr, mcpool.ErrConnectFailed) || errors.Is(upErr, mcpool.ErrServerUnavailable)) {
		return draining(server)
	}
	return drainCancelled(server)
}

// refusedDraining reports whether err is a call refused by draining (not
// started; not one the drain's end cancelled).
func refusedDraining(err error) bool {
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != CodeUnavailable || je.Message != drainingRefused {
		return false
	}
	var d ErrorData
	return json.Unmarshal(je.Data, &d) == nil && d.Reason == "draining"
}

// upstreamError maps the pool's errors for a call to server, served in
// mode, to the gateway's JSON-RPC errors; others pass through as they are.
func upstreamError(server string, mode Mode, err error) error {
	var ue *mcpool.UnavailableError
	var lost *mcpool.SessionLostError
	switch {
	case errors.As(err, &lost) && lost.MayHaveRun:
		// The call may have run: not "unavailable, nothing was sent",
		// whatever its retry met. Its message says so.
		return err
	case mode != ModePassthrough && errors.Is(err, mcpool.ErrMisconfigured):
		// The gateway's own connects (its program, URL or credentials)
		// meet something no retry cures. What was met (a path, a page)
		// is for the gateway's log, not its clients. In passthrough a
		// refusal may be of the caller's own credentials: not this.
		return rpcError(CodeUnavailable, "server "+server+" is misconfigured at the gateway: its connects meet something no retry cures (the gateway's log says what); do not retry until its operator fixes it",
			ErrorData{Server: server, Reason: "misconfigured"})
	case errors.As(err, &ue):
		retry := max(ue.RetryIn, 100*time.Millisecond)
		return rpcError(CodeUnavailable, fmt.Sprintf("server %s unavailable: %d connects failed in a row (circuit breaker open); retry in %v",
			server, ue.Failures, retry.Round(time.Millisecond)),
			ErrorData{Server: server, Reason: "unavailable", RetryAfterMs: retry.Milliseconds()})
	case errors.Is(err, mcpool.ErrServerUnavailable):
		return rpcError(CodeUnavailable, "server "+server+" unavailable (circuit breaker open)",
			ErrorData{Server: server, Reason: "unavailable", RetryAfterMs: 1000})
	case errors.Is(err, mcpool.ErrPoolExhausted):
		return overloaded(server, "no upstream session had room in time", time.Second)
	case err == mcpool.ErrPoolClosed: // bare: refused before it started (Pool.Acquire)
		return draining(server)
	case errors.Is(err, mcpool.ErrPoolClosed):
		// Wrapped with the call's error: the pool's Close cancelled it at
		// its drain deadline, after it was sent (Pool.CallTool).
		return drainCancelled(server)
	case errors.Is(err, mcpool.ErrUnauthorized):
		return rpcError(CodeUnauthorized, "server "+server+" refused the credentials", ErrorData{Server: server, Reason: "unauthorized"})
	}
	return err
}
