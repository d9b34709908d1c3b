package mcpool

import (
	"math"
	"sync"
	"time"
)

// Health is a server's status as a pool sees it, in Stats.Health.
type Health string

// The values of Health, checked in this order.
const (
	// HealthUnavailable: the pool is closed, or its circuit breaker is open
	// and no session is left. The score is 0.
	HealthUnavailable Health = "unavailable"
	// HealthConnecting: no session has connected yet (before Start too).
	HealthConnecting Health = "connecting"
	// HealthReconnecting: sessions were lost and fewer than MinSessions are
	// left (none, possibly); replacements are being connected.
	HealthReconnecting Health = "reconnecting"
	// HealthDegraded: the score is below HealthyScore, or connects are
	// failing, or the breaker is half-open.
	HealthDegraded Health = "degraded"
	// HealthConnected: everything else.
	HealthConnected Health = "connected"
)

// HealthyScore is the score below which a connected pool reports
// HealthDegraded.
const HealthyScore = 0.8

// The weights of the moving averages behind the health score: the weight
// of the newest sample in each exponentially weighted moving average.
const (
	healthRequestWeight  = 0.1  // request outcomes: about the last 10–20 requests
	healthConnectWeight  = 0.3  // connect outcomes: about the last 3–5 connects
	healthRecentWeight   = 0.2  // recent tools/call latency
	healthBaselineWeight = 0.01 // long-run tools/call latency: about the last 100 calls
	healthWarmup         = 10   // tools/call successes before latency counts
)

// healthTracker keeps moving averages of a pool's request and connect
// outcomes and of its tools/call latency. It is fed by the pool's sending
// middleware and connect path, always: the cost is a short lock per request
// and per connect, never on Acquire or Release.
type healthTracker struct {
	mu       sync.Mutex
	init     bool
	requests float64 // EWMA of request outcomes: 1 success, 0 failure
	connects float64 // EWMA of connect outcomes
	recent   float64 // EWMA of tools/call latency, seconds (fast)
	baseline float64 // EWMA of tools/call latency, seconds (slow)
	calls    int     // tools/call successes seen, up to healthWarmup
}

func (h *healthTracker) initLocked() {
	if !h.init {
		h.init = true
		h.requests, h.connects = 1, 1
	}
}

// request records one request's outcome; a successful tools/call also
// feeds the latency averages.
func (h *healthTracker) request(call, ok bool, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	h.requests = ewma(h.requests, b2f(ok), healthRequestWeight)
	if !call || !ok {
		return
	}
	s := d.Seconds()
	if h.calls == 0 {
		h.recent, h.baseline = s, s
	} else {
		h.recent = ewma(h.recent, s, healthRecentWeight)
		h.baseline = ewma(h.baseline, s, healthBaselineWeight)
	}
	if h.calls < healthWarmup {
		h.calls++
	}
}

func (h *healthTracker) connect(ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	h.connects = ewma(h.connects, b2f(ok), healthConnectWeight)
}

// report computes the score and status for a Stats snapshot (see the
// README's "Health score"):
//
//	score = requests × connects × latency
//	latency = min(1, 2 × baseline / recent)   (1 during the warm-up)
//
// and 0 when unavailable.
func (h *healthTracker) report(st *Stats, minSessions int) (float64, Health) {
	h.mu.Lock()
	h.initLocked()
	score := h.requests * h.connects
	if h.calls >= healthWarmup && h.recent > 0 {
		score *= math.Min(1, 2*h.baseline/h.recent)
	}
	h.mu.Unlock()
	score = math.Max(0, math.Min(1, score))
	switch {
	case st.Closed || (st.Breaker == "open" && st.Sessions == 0):
		return 0, HealthUnavailable
	case st.Sessions == 0 && st.SessionsCreated == 0:
		return score, HealthConnecting
	case st.Sessions < minSessions:
		return score, HealthReconnecting
	case score < HealthyScore || st.ConsecutiveFailures > 0 || st.Breaker == "half-open":
		return score, HealthDegraded
	}
	return score, HealthConnected
}

func ewma(avg, sample, weight float64) float64 { return avg + weight*(sample-avg) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
