package mcpool

// SumStats adds up the Stats of several pools (the replicas of a server,
// the identities of a keyed pool): counts and counters are added,
// MaxSessions too; ConsecutiveFailures is the largest; HealthScore the
// lowest and Health the worst (in the order unavailable, connecting,
// reconnecting, degraded, connected); Breaker is "open" if any breaker is
// open, else "half-open" if any is, else that of the first. Status, Store,
// the AcquireWait figures, ProtocolVersion, Uptime and Closed are left zero.
// With no Stats it returns the Stats of an empty pool: connecting, score 1.
func SumStats(stats ...Stats) Stats {
	sum := Stats{HealthScore: 1, Health: HealthConnected, Breaker: "closed"}
	if len(stats) == 0 {
		sum.Health = HealthConnecting
	}
	rank := map[Health]int{HealthUnavailable: 0, HealthConnecting: 1, HealthReconnecting: 2, HealthDegraded: 3, HealthConnected: 4}
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
		sum.HealthScore = min(sum.HealthScore, st.HealthScore)
		if rank[st.Health] < rank[sum.Health] {
			sum.Health = st.Health
		}
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
