package main

import (
	"github.com/mcpool/mcpool/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// gatewayREDCollector exports the gateway's calls as it measured them
// (Gateway.Requests), whatever path they took upstream: shared pool,
// isolated session or passthrough identity. The status page's figures come
// from the same recording point. It also exports the connect limiter's
// queue.
type gatewayREDCollector struct{ gw **gateway.Gateway }

var (
	gwRequestsDesc = prometheus.NewDesc("mcpool_gateway_requests_total",
		"Calls (tools/call, prompts/get, resources/read) answered by the gateway, per server, method and outcome (ok, error, timeout, canceled, overloaded, unavailable, unauthorized), in every mode.",
		[]string{"server", "method", "outcome"}, nil)
	gwDurationDesc = prometheus.NewDesc("mcpool_gateway_request_duration_seconds",
		"Latency of calls as measured at the gateway (admission, connect queue, connect of an isolated session and the upstream call), per server and method.",
		[]string{"server", "method"}, nil)
	gwConnectsDesc = prometheus.NewDesc("mcpool_gateway_connects",
		"Connects of stdio servers (process start and initialize) across the gateway, by state: in_flight or queued.", []string{"state"}, nil)
	gwConnectWaitDesc = prometheus.NewDesc("mcpool_gateway_connect_wait_seconds_mean",
		"Mean time a connect waited in the gateway-wide connect queue.", nil, nil)
)

// Describe sends the descriptions.
func (c gatewayREDCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gwRequestsDesc
	ch <- gwDurationDesc
	ch <- gwConnectsDesc
	ch <- gwConnectWaitDesc
}

// Collect reads Gateway.Requests and the connect figures.
func (c gatewayREDCollector) Collect(ch chan<- prometheus.Metric) {
	gw := *c.gw
	if gw == nil {
		return // not made yet
	}
	for _, f := range gw.Requests() {
		for outcome, n := range f.Outcomes {
			ch <- prometheus.MustNewConstMetric(gwRequestsDesc, prometheus.CounterValue, float64(n), f.Server, f.Method, outcome)
		}
		buckets := make(map[float64]uint64, len(f.Buckets))
		for i, n := range f.Buckets {
			buckets[gateway.RequestDurationBuckets[i]] = n
		}
		ch <- prometheus.MustNewConstHistogram(gwDurationDesc, f.Count, f.Sum, buckets, f.Server, f.Method)
	}
	st := gw.Status().Connects
	ch <- prometheus.MustNewConstMetric(gwConnectsDesc, prometheus.GaugeValue, float64(st.InFlight), "in_flight")
	ch <- prometheus.MustNewConstMetric(gwConnectsDesc, prometheus.GaugeValue, float64(st.Queued), "queued")
	ch <- prometheus.MustNewConstMetric(gwConnectWaitDesc, prometheus.GaugeValue, st.MeanWait.Seconds())
}
