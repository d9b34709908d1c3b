package mcpoolprom_test

import (
	"context"
	"log"
	"net/http"

	"github.com/mcpool/mcpool"
	mcpoolprom "github.com/mcpool/mcpool/prom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Export a pool to Prometheus and serve /metrics.
func Example() {
	pool, err := mcpool.New(mcpool.Config{URL: "http://127.0.0.1:8080/mcp"})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	c := mcpoolprom.New(mcpoolprom.Options{})
	if err := c.AddPool("github", pool); err != nil { // before Start, to see every event
		log.Fatal(err)
	}
	prometheus.MustRegister(c)
	http.Handle("/metrics", promhttp.Handler())
}
