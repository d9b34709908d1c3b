package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A failure no retry cures is the gateway's misconfiguration where the
// gateway connects with its own credentials (shared, isolated): reason
// "misconfigured", no retry. In passthrough the refusal may be of the
// caller's own credentials (a 403), so it is not blamed on the gateway.
func TestUpstreamErrorMisconfigured(t *testing.T) {
	permanent := &mcpool.UnavailableError{Failures: 1, Cause: &mcpool.ConnectError{Target: "https://x/mcp", Permanent: true,
		Cause: errors.New("the server refused access (403 Forbidden)")}}
	reason := func(err error) (string, int64) {
		var je *jsonrpc.Error
		var d ErrorData
		if !errors.As(err, &je) || json.Unmarshal(je.Data, &d) != nil {
			t.Fatalf("%v: not a gateway error", err)
		}
		return d.Reason, d.RetryAfterMs
	}
	for _, mode := range []Mode{ModeShared, ModeIsolated} {
		if r, retry := reason(upstreamError("s", mode, permanent)); r != "misconfigured" || retry != 0 {
			t.Errorf("%s: reason %q, retry %dms; want misconfigured, no retry", mode, r, retry)
		}
	}
	if r, _ := reason(upstreamError("s", ModePassthrough, permanent)); r == "misconfigured" {
		t.Errorf("passthrough: reason %q: blames the gateway for the caller's refusal", r)
	}
}

// A lost call that may have run is never answered "unavailable" (which
// says nothing was sent), whatever its retry met.
func TestUpstreamErrorLostCall(t *testing.T) {
	retryMet := &mcpool.UnavailableError{Failures: 3, Cause: errors.New("connection refused")}
	lost := &mcpool.SessionLostError{Tool: "t", MayHaveRun: true, Retried: true, Cause: retryMet}
	if err := upstreamError("s", ModeShared, lost); err != lost {
		t.Errorf("upstreamError = %v; want the SessionLostError as it is", err)
	}
	neverRan := &mcpool.SessionLostError{Tool: "t", Retried: true, Cause: retryMet}
	var je *jsonrpc.Error
	if err := upstreamError("s", ModeShared, neverRan); !errors.As(err, &je) || je.Code != CodeUnavailable {
		t.Errorf("upstreamError = %v; a call that never ran is unavailable", err)
	}
}

// A call the drain's end cancelled is told it may have taken effect only
// when the upstream was asked and its error is not one of a call that
// found no session; otherwise it was not started, and may be retried.
func TestDrainEnded(t *testing.T) {
	lost := &mcpool.SessionLostError{Tool: "t", MayHaveRun: true, Cause: &mcpool.UnavailableError{Failures: 1, Cause: errors.New("refused")}}
	for _, tc := range []struct {
		name    string
		sent    bool
		upErr   error
		refused bool // answered as not started (draining, retry)
	}{
		{"queued for admission", false, context.Canceled, true},
		{"waiting for a pooled session", true, &mcpool.ExhaustedError{Cause: context.Canceled}, true},
		{"its server's connects failing", true, &mcpool.ConnectError{Target: "x", Cause: context.Canceled}, true},
		{"running upstream", true, context.Canceled, false},
		{"lost, its retry finding no session", true, lost, false},
	} {
		if got := refusedDraining(drainEnded("s", tc.sent, tc.upErr)); got != tc.refused {
			t.Errorf("%s: answered as not started = %v; want %v", tc.name, got, tc.refused)
		}
	}
}

// A call refused by a closed pool was not started: retry. One its Close
// cancelled at the drain deadline was sent: it may have taken effect.
func TestUpstreamErrorPoolClosed(t *testing.T) {
	p, err := mcpool.New(mcpool.Config{URL: "http://127.0.0.1:1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, refused := p.CallTool(context.Background(), &mcp.CallToolParams{Name: "t"})
	if !refusedDraining(upstreamError("s", ModeShared, refused)) {
		t.Errorf("a closed pool's refusal (%v) is not answered as not started", refused)
	}
	cancelled := fmt.Errorf("%w: call cancelled at the drain deadline: %w", mcpool.ErrPoolClosed, context.Canceled) // calls.go's shape
	if refusedDraining(upstreamError("s", ModeShared, cancelled)) {
		t.Errorf("a call the pool's Close cancelled is answered as not started")
	}
}
