package mcpool

import (
	"math"
	"testing"
	"time"
)

// report judges a copy of st with h, as Pool.Stats does.
func (h *healthTracker) report(st *Stats, minSessions int) (float64, Health) {
	cp := *st
	h.judge(&cp, minSessions)
	return cp.HealthScore, cp.Health
}

// TestHealthScoreFormula checks the documented formula on the tracker
// alone: score = requests × connects × latency, and the status rules.
func TestHealthScoreFormula(t *testing.T) {
	connected := Stats{Sessions: 1, SessionsCreated: 1, Breaker: "closed"}
	var h healthTracker
	if s, st := h.report(&connected, 1); s != 1 || st != HealthConnected {
		t.Fatalf("fresh: %.3f %s, want 1 connected", s, st)
	}
	for range healthWarmup {
		h.request(true, true, 10*time.Millisecond)
	}
	if s, _ := h.report(&connected, 1); s != 1 {
		t.Fatalf("steady latency: %.3f, want 1", s)
	}
	// Three failed requests: 0.9³ of the request average is left.
	for range 3 {
		h.request(false, false, 0)
	}
	s, st := h.report(&connected, 1)
	if want := math.Pow(0.9, 3); math.Abs(s-want) > 1e-9 || st != HealthDegraded {
		t.Fatalf("after 3 failures: %.3f %s, want %.3f degraded", s, st, want)
	}
	// One failed connect: 0.7 of the connect average is left.
	h.connect(false)
	if s2, _ := h.report(&connected, 1); math.Abs(s2-s*0.7) > 1e-9 {
		t.Fatalf("after a failed connect: %.3f, want %.3f", s2, s*0.7)
	}

	// Latency: the last 5 calls 10× slower than the baseline.
	var l healthTracker
	for range healthWarmup {
		l.request(true, true, 10*time.Millisecond)
	}
	for range 5 {
		l.request(true, true, 100*time.Millisecond)
	}
	l.mu.Lock()
	want := math.Min(1, 2*l.baseline/l.recent)
	l.mu.Unlock()
	if s, st := l.report(&connected, 1); math.Abs(s-want) > 1e-9 || s > 0.5 || st != HealthDegraded {
		t.Fatalf("slow calls: %.3f %s, want %.3f (< 0.5) degraded", s, st, want)
	}

}

// TestHealthJudgedWithStatus: Status, Health and HealthScore come from one
// judgement of the same facts. A pool whose breaker is open or that has no
// session is never connected, and scores below HealthyScore even when its
// measured figures are perfect; Health is connected only with Status
// healthy, and unavailable exactly when Status is.
func TestHealthJudgedWithStatus(t *testing.T) {
	for _, c := range []struct {
		name   string
		st     Stats
		status Status
		health Health
		score  float64 // -1: the measured score (1 here)
	}{
		{"before Start", Stats{}, StatusDegraded, HealthConnecting, 0},
		{"first connect", Stats{Connecting: 1, Breaker: "closed"}, StatusDegraded, HealthConnecting, 0},
		{"connects failing, none yet", Stats{ConsecutiveFailures: 2, Breaker: "closed"}, StatusDegraded, HealthConnecting, 0},
		{"lost every session", Stats{SessionsCreated: 2, Connecting: 1, Breaker: "closed"}, StatusDegraded, HealthReconnecting, 0},
		{"breaker disabled, no session", Stats{SessionsCreated: 1, Breaker: "disabled"}, StatusDegraded, HealthReconnecting, 0},
		{"breaker open, no session", Stats{SessionsCreated: 2, Breaker: "open"}, StatusUnavailable, HealthUnavailable, 0},
		{"breaker open, never connected", Stats{ConsecutiveFailures: 5, Breaker: "open"}, StatusUnavailable, HealthUnavailable, 0},
		{"breaker open, sessions left", Stats{Sessions: 2, SessionsCreated: 2, ConsecutiveFailures: 5, Breaker: "open"}, StatusDegraded, HealthDegraded, HealthyScore / 2},
		{"closed", Stats{Sessions: 1, SessionsCreated: 1, Breaker: "closed", Closed: true}, StatusUnavailable, HealthUnavailable, 0},
		{"fewer than MinSessions", Stats{Sessions: 1, SessionsCreated: 3, Breaker: "closed"}, StatusDegraded, HealthReconnecting, -1},
		{"half-open", Stats{Sessions: 2, SessionsCreated: 2, Breaker: "half-open"}, StatusDegraded, HealthDegraded, -1},
		{"a connect failed", Stats{Sessions: 2, SessionsCreated: 3, ConsecutiveFailures: 1, Breaker: "closed"}, StatusDegraded, HealthDegraded, -1},
		{"connected", Stats{Sessions: 2, SessionsCreated: 2, Breaker: "closed"}, StatusHealthy, HealthConnected, -1},
	} {
		var fresh healthTracker
		st := c.st
		fresh.judge(&st, 2)
		want := c.score
		if want < 0 {
			want = 1
		}
		if st.Status != c.status || st.Health != c.health || st.HealthScore != want {
			t.Errorf("%s: %s, %s %.2f; want %s, %s %.2f", c.name, st.Status, st.Health, st.HealthScore, c.status, c.health, want)
		}
		if (st.Breaker == "open" || st.Sessions == 0) && (st.Health == HealthConnected || st.HealthScore >= HealthyScore) {
			t.Errorf("%s: %s %.2f with breaker %s and %d sessions", c.name, st.Health, st.HealthScore, st.Breaker, st.Sessions)
		}
	}
	// The measured score counts too: low, the pool is degraded while its
	// sessions and connects are fine.
	var h healthTracker
	for range 5 {
		h.request(false, false, 0)
	}
	st := Stats{Sessions: 2, SessionsCreated: 2, Breaker: "closed"}
	h.judge(&st, 2)
	if st.Status != StatusHealthy || st.Health != HealthDegraded || st.HealthScore >= HealthyScore {
		t.Errorf("failing requests: %s, %s %.2f; want healthy, degraded below %.2f", st.Status, st.Health, st.HealthScore, HealthyScore)
	}
}
