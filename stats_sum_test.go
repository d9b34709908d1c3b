package mcpool

import "testing"

// TestSumStatsHealth: a sum of pools (a server's replicas, a keyed pool's
// identities) is unavailable only when every pool is, connected only when
// every pool is, and scores the mean of its pools.
func TestSumStatsHealth(t *testing.T) {
	connected := Stats{Status: StatusHealthy, Health: HealthConnected, HealthScore: 1, Breaker: "closed", Sessions: 1}
	slow := Stats{Status: StatusHealthy, Health: HealthDegraded, HealthScore: 0.6, Breaker: "closed", Sessions: 1}
	connecting := Stats{Status: StatusDegraded, Health: HealthConnecting, Breaker: "closed"}
	dead := Stats{Status: StatusUnavailable, Health: HealthUnavailable, Breaker: "open"}
	for _, c := range []struct {
		name   string
		pools  []Stats
		status Status
		health Health
		score  float64
	}{
		{"none", nil, StatusDegraded, HealthConnecting, 0},
		{"one", []Stats{slow}, StatusHealthy, HealthDegraded, 0.6},
		{"all connected", []Stats{connected, connected}, StatusHealthy, HealthConnected, 1},
		{"one slow", []Stats{connected, slow}, StatusHealthy, HealthDegraded, 0.8},
		{"one dead", []Stats{connected, dead}, StatusDegraded, HealthDegraded, 0.5},
		{"one dead, one connecting", []Stats{dead, connecting}, StatusDegraded, HealthConnecting, 0},
		{"all dead", []Stats{dead, dead}, StatusUnavailable, HealthUnavailable, 0},
	} {
		sum := SumStats(c.pools...)
		if sum.Status != c.status || sum.Health != c.health || sum.HealthScore != c.score {
			t.Errorf("%s: %s, %s %.2f; want %s, %s %.2f", c.name, sum.Status, sum.Health, sum.HealthScore, c.status, c.health, c.score)
		}
	}
	if sum := SumStats(connected, dead); sum.Breaker != "open" || sum.Sessions != 1 {
		t.Errorf("breaker %q, %d sessions; want open, 1", sum.Breaker, sum.Sessions)
	}
}
