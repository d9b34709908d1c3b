package mcpool

// SumStats adds up the Stats of several pools (the replicas of a server,
// the identities of a keyed pool): counts and counters are added,
// MaxSessions too; ConsecutiveFailures is the largest; Breaker is "open" if
// any breaker is open, else "half-open" if any is, else that of the first.
// Status, Health and HealthScore combine the pools' own (see sumHealth):
// unavailable only when every pool is, healthy and connected only when
// every pool is, and the score is the mean of the pools' scores. Store, the
// AcquireWait figures, ProtocolVersion, Uptime and Closed are left zero.
// With no Stats it returns the Stats of a pool not started yet: degraded,
// connecting, score 0.
func SumStats(stats ...Stats) Stats {
	sum := Stats{Breaker: "closed"}
	sum.Status, sum.Health, sum.HealthScore = sumHealth(stats)
	for i, st := range stats {
		sum.Sessions += st.Sessions
		sum.ActiveSessions += st.ActiveSessions
		sum.IdleSessions += st.IdleSessions
		sum.Connecting += st.Connecting
		sum.MaxSessions += st.MaxSessions
		sum.CallsInFlight += st.CallsInFlight
		sum.Waiters += st.Waiters
		sum.Acquires += st.Acquires
		sum.AcquireTimeouts += st.AcquireTimeouts
		sum.CacheHits += st.CacheHits
		sum.CacheMisses += st.CacheMisses
		sum.CacheInvalidations += st.CacheInvalidations
		sum.SessionsCreated += st.SessionsCreated
		sum.SessionsDestroyed += st.SessionsDestroyed
		sum.Reconnects += st.Reconnects
		sum.ConnectErrors += st.ConnectErrors
		sum.Errors += st.Errors
		sum.Deaths += st.Deaths
		sum.Probes += st.Probes
		sum.ProbeFailures += st.ProbeFailures
		sum.Retired += st.Retired
		sum.Retries += st.Retries
		sum.LostCalls += st.LostCalls
		sum.Unavailable += st.Unavailable
		sum.LeakedLeases += st.LeakedLeases
		sum.StoreHits += st.StoreHits
		sum.StoreErrors += st.StoreErrors
		sum.ConsecutiveFailures = max(sum.ConsecutiveFailures, st.ConsecutiveFailures)
		switch {
		case i == 0, st.Breaker == "open", st.Breaker == "half-open" && sum.Breaker != "open":
			sum.Breaker = st.Breaker
		}
	}
	if n := sum.CacheHits + sum.CacheMisses; n > 0 {
		sum.CacheHitRate = float64(sum.CacheHits) / float64(n)
	}
	return sum
}

// sumHealth combines the Status, Health and HealthScore that several pools
// judged for themselves (a server's replicas, a keyed pool's identities):
// a call can go to any of them, so the sum is unavailable only when every
// pool is, healthy and connected only when every pool is, and otherwise
// degraded, with the worst Health among the pools that are not
// unavailable (in the order connecting, reconnecting, degraded, connected;
// degraded at best when some pool is unavailable). The score is the mean
// of the pools' scores, so it is below HealthyScore when every pool's is,
// and 0 when no pool has a session.
func sumHealth(stats []Stats) (Status, Health, float64) {
	if len(stats) == 0 {
		return StatusDegraded, HealthConnecting, 0
	}
	rank := map[Health]int{HealthConnecting: 1, HealthReconnecting: 2, HealthDegraded: 3, HealthConnected: 4}
	healthy, unavailable := 0, 0
	var score float64
	var worst Health
	for _, st := range stats {
		score += st.HealthScore
		switch st.Status {
		case StatusHealthy:
			healthy++
		case StatusUnavailable:
			unavailable++
			continue
		}
		if worst == "" || rank[st.Health] < rank[worst] {
			worst = st.Health
		}
	}
	score /= float64(len(stats))
	switch {
	case unavailable == len(stats):
		return StatusUnavailable, HealthUnavailable, 0
	case healthy == len(stats):
		return StatusHealthy, worst, score
	case worst == HealthConnected:
		return StatusDegraded, HealthDegraded, score
	}
	return StatusDegraded, worst, score
}
