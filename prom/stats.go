package mcpoolprom

import (
	"github.com/mcpool/mcpool"
	"github.com/prometheus/client_golang/prometheus"
)

// statMetric is one metric read from Stats at scrape time.
type statMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(st *mcpool.Stats) float64
}

func gauge(name, help string, v func(st *mcpool.Stats) float64) statMetric {
	return statMetric{prometheus.NewDesc(name, help, []string{"server"}, nil), prometheus.GaugeValue, v}
}

func counter(name, help string, v func(st *mcpool.Stats) uint64) statMetric {
	return statMetric{prometheus.NewDesc(name, help, []string{"server"}, nil), prometheus.CounterValue,
		func(st *mcpool.Stats) float64 { return float64(v(st)) }}
}

// statMetrics are the metrics with only a server label.
var statMetrics = []statMetric{
	gauge("mcpool_max_sessions", "The configured cap on sessions (MaxSessions).",
		func(st *mcpool.Stats) float64 { return float64(st.MaxSessions) }),
	gauge("mcpool_calls_in_flight", "Leases held: calls in flight across the pool's sessions.",
		func(st *mcpool.Stats) float64 { return float64(st.CallsInFlight) }),
	gauge("mcpool_waiters", "Callers queued for room on a session.",
		func(st *mcpool.Stats) float64 { return float64(st.Waiters) }),
	gauge("mcpool_calls_per_session_limit", "Calls one session takes before callers queue: MaxCallsPerSession, or fewer while the server gains nothing from more at once.",
		func(st *mcpool.Stats) float64 { return float64(st.CallsPerSessionLimit) }),
	gauge("mcpool_health_score", "Health score in [0, 1] from recent request and connect outcomes and latency.",
		func(st *mcpool.Stats) float64 { return st.HealthScore }),
	gauge("mcpool_consecutive_connect_failures", "Connects failed in a row (0 after a success).",
		func(st *mcpool.Stats) float64 { return float64(st.ConsecutiveFailures) }),
	counter("mcpool_acquires_total", "Successful acquires.",
		func(st *mcpool.Stats) uint64 { return st.Acquires }),
	counter("mcpool_acquire_timeouts_total", "Acquires that gave up waiting for room (ErrPoolExhausted).",
		func(st *mcpool.Stats) uint64 { return st.AcquireTimeouts }),
	counter("mcpool_acquires_refused_total", "Acquires refused at once while the circuit breaker was open (ErrServerUnavailable).",
		func(st *mcpool.Stats) uint64 { return st.Unavailable }),
	counter("mcpool_sessions_created_total", "Sessions connected.",
		func(st *mcpool.Stats) uint64 { return st.SessionsCreated }),
	counter("mcpool_reconnects_total", "Sessions connected to replace one the pool lost.",
		func(st *mcpool.Stats) uint64 { return st.Reconnects }),
	counter("mcpool_connect_errors_total", "Failed connects.",
		func(st *mcpool.Stats) uint64 { return st.ConnectErrors }),
	counter("mcpool_session_deaths_total", "Sessions found dead (ended, failed a call or a health check).",
		func(st *mcpool.Stats) uint64 { return st.Deaths }),
	counter("mcpool_probes_total", "Health checks run.",
		func(st *mcpool.Stats) uint64 { return st.Probes }),
	counter("mcpool_probe_failures_total", "Health checks failed.",
		func(st *mcpool.Stats) uint64 { return st.ProbeFailures }),
	counter("mcpool_retries_total", "Calls retried on another session after their session died.",
		func(st *mcpool.Stats) uint64 { return st.Retries }),
	counter("mcpool_lost_calls_total", "Calls that failed with ErrSessionLost.",
		func(st *mcpool.Stats) uint64 { return st.LostCalls }),
	counter("mcpool_catalog_cache_hits_total", "List requests answered from the catalog cache.",
		func(st *mcpool.Stats) uint64 { return st.CacheHits }),
	counter("mcpool_catalog_cache_misses_total", "List requests that fetched from the server.",
		func(st *mcpool.Stats) uint64 { return st.CacheMisses }),
	counter("mcpool_catalog_invalidations_total", "Catalog invalidations (list_changed and the like).",
		func(st *mcpool.Stats) uint64 { return st.CacheInvalidations }),
	counter("mcpool_catalog_store_hits_total", "Lists served from the shared CatalogStore instead of the server.",
		func(st *mcpool.Stats) uint64 { return st.StoreHits }),
	counter("mcpool_catalog_store_errors_total", "CatalogStore operations that failed.",
		func(st *mcpool.Stats) uint64 { return st.StoreErrors }),
	counter("mcpool_leaked_leases_total", "Leases held longer than LeakThreshold.",
		func(st *mcpool.Stats) uint64 { return st.LeakedLeases }),
}

// Metrics with a state label: one series per value, the current one 1.
var (
	sessionsDesc = prometheus.NewDesc("mcpool_sessions",
		"Sessions by state: active (carrying calls), idle, connecting.", []string{"server", "state"}, nil)
	breakerDesc = prometheus.NewDesc("mcpool_breaker_state",
		"The connect circuit breaker: 1 for its current state (closed, open, half-open, disabled), 0 for the others.",
		[]string{"server", "state"}, nil)
	healthDesc = prometheus.NewDesc("mcpool_health_status",
		"The server's status: 1 for the current one (connected, connecting, reconnecting, degraded, unavailable), 0 for the others.",
		[]string{"server", "status"}, nil)

	breakerStates = []string{"closed", "open", "half-open", "disabled"}
	healthStates  = []mcpool.Health{mcpool.HealthConnected, mcpool.HealthConnecting, mcpool.HealthReconnecting,
		mcpool.HealthDegraded, mcpool.HealthUnavailable}
)

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range statMetrics {
		ch <- m.desc
	}
	ch <- sessionsDesc
	ch <- breakerDesc
	ch <- healthDesc
	c.acquireWait.Describe(ch)
	c.callDuration.Describe(ch)
	c.calls.Describe(ch)
	c.closed.Describe(ch)
}

// Collect reads every pool's Stats and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.SyncGroups()
	c.mu.Lock()
	sources := append([]source(nil), c.sources...)
	c.mu.Unlock()
	sources = append(sources, c.groupSources()...)
	c.forgetGone(sources)
	for _, s := range sources {
		st := s.stats()
		for _, m := range statMetrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&st), s.server)
		}
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(st.ActiveSessions), s.server, "active")
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(st.IdleSessions), s.server, "idle")
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(st.Connecting), s.server, "connecting")
		for _, b := range breakerStates {
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, is(st.Breaker == b), s.server, b)
		}
		for _, h := range healthStates {
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, is(st.Health == h), s.server, string(h))
		}
	}
	c.acquireWait.Collect(ch)
	c.callDuration.Collect(ch)
	c.calls.Collect(ch)
	c.closed.Collect(ch)
}

func is(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
