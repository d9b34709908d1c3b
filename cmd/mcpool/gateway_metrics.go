package main

import (
	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// gatewayCollector exports the gateway's own figures (its admission and
// drain state) next to the pools' mcpool_* metrics. It reads
// Gateway.Status, which does no I/O, at each scrape.
type gatewayCollector struct{ gw **gateway.Gateway }

var (
	gwInFlightDesc = prometheus.NewDesc("mcpool_gateway_calls_in_flight",
		"Calls (tools/call, prompts/get, resources/read) in flight at the gateway, per server.", []string{"server"}, nil)
	gwQueuedDesc = prometheus.NewDesc("mcpool_gateway_callers_queued",
		"Callers queued at the gateway for a slot under max-in-flight, per server.", []string{"server"}, nil)
	gwRefusedDesc = prometheus.NewDesc("mcpool_gateway_refused_total",
		"Calls refused as overloaded (JSON-RPC overloaded error), per server.", []string{"server"}, nil)
	gwRateLimitedDesc = prometheus.NewDesc("mcpool_gateway_rate_limited_total",
		"Calls refused by the per-identity rate limit (JSON-RPC error -32029, reason rate_limited), per server.", []string{"server"}, nil)
	gwDrainingDesc = prometheus.NewDesc("mcpool_gateway_draining",
		"1 while the gateway drains (readiness dropped, new calls refused), else 0.", nil, nil)
	gwIsolatedDesc = prometheus.NewDesc("mcpool_gateway_isolated_sessions",
		"Upstream sessions held by downstream sessions of isolated servers.", nil, nil)
	buildInfoDesc = prometheus.NewDesc("mcpool_build_info",
		"Always 1; its labels name the build: mcpool's version, the Go version and the go-sdk version.", []string{"version", "goversion", "sdk"}, nil)
)

// Describe sends the gateway metrics' descriptions.
func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gwInFlightDesc
	ch <- gwQueuedDesc
	ch <- gwRefusedDesc
	ch <- gwRateLimitedDesc
	ch <- gwDrainingDesc
	ch <- gwIsolatedDesc
	ch <- buildInfoDesc
}

// Collect reads the gateway's Status and sends its figures.
func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	b := mcpool.BuildInfo()
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, b.Version, b.GoVersion, b.SDKVersion)
	gw := *c.gw
	if gw == nil {
		return // not made yet
	}
	st := gw.Status()
	for _, s := range st.Servers {
		ch <- prometheus.MustNewConstMetric(gwInFlightDesc, prometheus.GaugeValue, float64(s.InFlight), s.Name)
		ch <- prometheus.MustNewConstMetric(gwQueuedDesc, prometheus.GaugeValue, float64(s.Queued), s.Name)
		ch <- prometheus.MustNewConstMetric(gwRefusedDesc, prometheus.CounterValue, float64(s.Refused), s.Name)
		ch <- prometheus.MustNewConstMetric(gwRateLimitedDesc, prometheus.CounterValue, float64(gw.RateLimited(s.Name)), s.Name)
	}
	draining := 0.0
	if st.Draining {
		draining = 1
	}
	ch <- prometheus.MustNewConstMetric(gwDrainingDesc, prometheus.GaugeValue, draining)
	ch <- prometheus.MustNewConstMetric(gwIsolatedDesc, prometheus.GaugeValue, float64(st.IsolatedSessions))
}
