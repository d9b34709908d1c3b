package mcpool

import (
	"math"
	"testing"
	"time"
)

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

	for _, c := range []struct {
		st   Stats
		want Health
	}{
		{Stats{}, HealthConnecting},
		{Stats{Connecting: 1}, HealthConnecting},
		{Stats{SessionsCreated: 2, Sessions: 0, Connecting: 1, Breaker: "closed"}, HealthReconnecting},
		{Stats{SessionsCreated: 2, Breaker: "open"}, HealthUnavailable},
		{Stats{Sessions: 1, SessionsCreated: 1, Closed: true}, HealthUnavailable},
		{Stats{Sessions: 1, SessionsCreated: 1, Breaker: "half-open"}, HealthDegraded},
		{Stats{Sessions: 1, SessionsCreated: 2, ConsecutiveFailures: 1, Breaker: "closed"}, HealthDegraded},
	} {
		var fresh healthTracker
		if _, got := fresh.report(&c.st, 1); got != c.want {
			t.Errorf("%+v: %s, want %s", c.st, got, c.want)
		}
	}
}
