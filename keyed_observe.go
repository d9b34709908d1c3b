package mcpool

// Observe attaches an observer to every identity's pool, those that exist
// and those made later; see [Pool.Observe]. The events carry no identity.
// Observe is safe for concurrent use.
func (k *Keyed) Observe(o Observer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.observers = append(k.observers, o)
	for _, p := range k.parts {
		p.pool.Observe(o)
	}
}

// observeLocked attaches the observers to a new identity's pool before it
// is used.
func (k *Keyed) observeLocked(p *Pool) {
	for _, o := range k.observers {
		p.Observe(o)
	}
}

// PoolStats returns the [Stats] of every identity's pool now, summed:
// counts and counters are added up, MaxSessions too; HealthScore is the
// lowest and Health the worst (in the order of the Health constants);
// Breaker is "open" if any breaker is open, else "half-open" if any is,
// else that of the first pool. Status, the AcquireWait figures,
// ProtocolVersion, Uptime and Closed are left zero. The counters of pools evicted or closed
// no longer count, so a sum may go down: monitoring systems read that as
// a counter reset. It costs one short lock per identity.
func (k *Keyed) PoolStats() Stats {
	k.mu.Lock()
	pools := make([]*Pool, 0, len(k.parts))
	for _, p := range k.parts {
		pools = append(pools, p.pool)
	}
	k.mu.Unlock()
	sum := Stats{HealthScore: 1, Health: HealthConnected, Breaker: "closed"}
	if len(pools) == 0 {
		sum.Health = HealthConnecting
	}
	rank := map[Health]int{HealthUnavailable: 0, HealthConnecting: 1, HealthReconnecting: 2, HealthDegraded: 3, HealthConnected: 4}
	for i, p := range pools {
		st := p.Stats()
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
