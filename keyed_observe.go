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

// PoolStats returns the [Stats] of every identity's pool now, summed as
// [SumStats] does. The counters of pools evicted or closed no longer
// count, so a sum may go down: monitoring systems read that as a counter
// reset. It costs one short lock per identity.
func (k *Keyed) PoolStats() Stats {
	k.mu.Lock()
	pools := make([]*Pool, 0, len(k.parts))
	for _, p := range k.parts {
		pools = append(pools, p.pool)
	}
	k.mu.Unlock()
	stats := make([]Stats, len(pools))
	for i, p := range pools {
		stats[i] = p.Stats()
	}
	return SumStats(stats...)
}
