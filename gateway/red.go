package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// RequestDurationBuckets are the upper bounds, in seconds, of the latency
// histogram in [RequestFigures]: a loopback call (about a millisecond) to a
// minute-long tool.
var RequestDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// The outcomes a call is counted under in [RequestFigures].
const (
	OutcomeOK           = "ok"           // answered; a tool result with isError counts here too
	OutcomeError        = "error"        // the server or the session failed the call
	OutcomeTimeout      = "timeout"      // CallTimeout or the caller's deadline passed
	OutcomeCanceled     = "canceled"     // the caller cancelled it
	OutcomeOverloaded   = "overloaded"   // refused with CodeOverloaded: nothing sent upstream
	OutcomeUnavailable  = "unavailable"  // refused with CodeUnavailable (breaker open, or draining)
	OutcomeUnauthorized = "unauthorized" // CodeUnauthorized
)

// RequestFigures are one server's calls of one method (tools/call,
// prompts/get, resources/read) since the gateway was made, as measured at
// the gateway from the moment the call was routed to the server to its
// answer: admission, the connect queue, a connect of an isolated session
// and the upstream call together, whatever the server's mode. Refused calls
// are counted too, with the time it took to refuse them. The status page's
// calls/s, p50 and p99 come from the same recording point.
type RequestFigures struct {
	Server string
	Method string
	// Outcomes counts the calls by outcome (OutcomeOK, ...).
	Outcomes map[string]uint64
	// Count and Sum (seconds) are over every outcome.
	Count uint64
	Sum   float64
	// Buckets[i] counts the calls that took at most
	// RequestDurationBuckets[i] seconds (cumulative, as in Prometheus).
	Buckets []uint64
}

// redRecorder holds one server's figures. Adding is O(buckets) under a
// short lock.
type redRecorder struct {
	mu      sync.Mutex
	methods map[string]*redSeries
}

type redSeries struct {
	outcomes map[string]uint64
	count    uint64
	sum      float64
	bins     []uint64 // not cumulative; the last is +Inf
}

// add records one call of method that took d with err as its answer.
func (r *redRecorder) add(method string, d time.Duration, err error) {
	outcome := callOutcome(err)
	sec := d.Seconds()
	i, _ := slices.BinarySearch(RequestDurationBuckets, sec)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.methods == nil {
		r.methods = map[string]*redSeries{}
	}
	s := r.methods[method]
	if s == nil {
		s = &redSeries{outcomes: map[string]uint64{}, bins: make([]uint64, len(RequestDurationBuckets)+1)}
		r.methods[method] = s
	}
	s.outcomes[outcome]++
	s.count++
	s.sum += sec
	s.bins[i]++
}

func (r *redRecorder) figures(server string) []RequestFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RequestFigures, 0, len(r.methods))
	for m, s := range r.methods {
		f := RequestFigures{Server: server, Method: m, Outcomes: make(map[string]uint64, len(s.outcomes)), Count: s.count, Sum: s.sum,
			Buckets: make([]uint64, len(RequestDurationBuckets))}
		for k, v := range s.outcomes {
			f.Outcomes[k] = v
		}
		var cum uint64
		for i := range f.Buckets {
			cum += s.bins[i]
			f.Buckets[i] = cum
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b RequestFigures) int { return strings.Compare(a.Method, b.Method) })
	return out
}

// Requests returns every server's call figures (see [RequestFigures]), in
// the order of Options.Servers and by method. It is cheap (no I/O).
func (g *Gateway) Requests() []RequestFigures {
	var out []RequestFigures
	for _, srv := range g.set.Load().servers {
		out = append(out, srv.red.figures(srv.name)...)
	}
	return out
}

// record is the one place a routed call's figures are taken: the
// Prometheus counters and histogram (Requests) and the status page's
// window. Call it deferred, at the start of the call, with the call's
// final error.
func (g *Gateway) record(srv *server, req mcp.Request, start time.Time, err *error) {
	d := time.Since(start)
	srv.red.add(methodOf(req), d, *err)
	srv.win.add(d, *err != nil)
}

// methodOf names req's MCP method.
func methodOf(req mcp.Request) string {
	switch req.(type) {
	case *mcp.CallToolRequest:
		return "tools/call"
	case *mcp.GetPromptRequest:
		return "prompts/get"
	case *mcp.ReadResourceRequest:
		return "resources/read"
	}
	return "other"
}

// callOutcome classifies a call's final error (after upstreamError).
func callOutcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		switch je.Code {
		case CodeOverloaded:
			return OutcomeOverloaded
		case CodeUnavailable:
			return OutcomeUnavailable
		case CodeUnauthorized:
			return OutcomeUnauthorized
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeError
}
