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
	// and no session is left. Status is StatusUnavailable; the score is 0.
	HealthUnavailable Health = "unavailable"
	// HealthConnecting: no session has connected yet (before Start too).
	// The score is 0: no session can take a call.
	HealthConnecting Health = "connecting"
	// HealthReconnecting: sessions were lost and fewer than MinSessions are
	// left; replacements are being connected. With none left the score is
	// 0.
	HealthReconnecting Health = "reconnecting"
	// HealthDegraded: the score is below HealthyScore, or connects are
	// failing, or the breaker is open (sessions left: the score is then at
	// most HealthyScore/2) or half-open.
	HealthDegraded Health = "degraded"
	// HealthConnected: everything else: at least MinSessions sessions, the
	// breaker closed (or disabled), the last connect worked and the score
	// at least HealthyScore. Status is then StatusHealthy.
	HealthConnected Health = "connected"
)

// HealthyScore is the score below which a pool reports HealthDegraded. A
// pool with no session, or with its circuit breaker open, always scores
// below it.
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

// measured returns the score from the moving averages alone (see the
// docs/library.md, "Health score"):
//
//	score = requests × connects × latency
//	latency = min(1, 2 × baseline / recent)   (1 during the warm-up)
func (h *healthTracker) measured() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	score := h.requests * h.connects
	if h.calls >= healthWarmup && h.recent > 0 {
		score *= math.Min(1, 2*h.baseline/h.recent)
	}
	return math.Max(0, math.Min(1, score))
}

// judge sets st.Status, st.Health and st.HealthScore from the facts st
// already holds (Closed, Breaker, Sessions, SessionsCreated,
// ConsecutiveFailures), the pool's MinSessions and the tracker's measured
// score. It is the one place where a pool's health is judged; SumStats
// combines the judgements of several pools. The rules, in order:
//
//   - closed, or breaker open and no session: unavailable, unavailable, 0;
//   - no session: degraded, connecting (none connected yet) or
//     reconnecting, 0;
//   - breaker open (sessions left): degraded, degraded, at most
//     HealthyScore/2;
//   - fewer than MinSessions: degraded, reconnecting;
//   - breaker half-open or connects failing: degraded, degraded;
//   - score below HealthyScore: healthy, degraded;
//   - else healthy, connected.
func (h *healthTracker) judge(st *Stats, minSessions int) {
	score := h.measured()
	switch {
	case st.Closed || st.Breaker == "open" && st.Sessions == 0:
		st.Status, st.Health, score = StatusUnavailable, HealthUnavailable, 0
	case st.Sessions == 0 && st.SessionsCreated == 0:
		st.Status, st.Health, score = StatusDegraded, HealthConnecting, 0
	case st.Sessions == 0:
		st.Status, st.Health, score = StatusDegraded, HealthReconnecting, 0
	case st.Breaker == "open":
		st.Status, st.Health, score = StatusDegraded, HealthDegraded, math.Min(score, HealthyScore/2)
	case st.Sessions < minSessions:
		st.Status, st.Health = StatusDegraded, HealthReconnecting
	case st.Breaker == "half-open" || st.ConsecutiveFailures > 0:
		st.Status, st.Health = StatusDegraded, HealthDegraded
	case score < HealthyScore:
		st.Status, st.Health = StatusHealthy, HealthDegraded
	default:
		st.Status, st.Health = StatusHealthy, HealthConnected
	}
	st.HealthScore = score
}

func ewma(avg, sample, weight float64) float64 { return avg + weight*(sample-avg) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
