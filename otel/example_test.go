package mcpoolotel_test

import (
	"context"
	"log"

	"github.com/mcpool/mcpool"
	mcpoolotel "github.com/mcpool/mcpool/otel"
)

// Trace a pool's requests and export its pool metrics with the global
// OpenTelemetry providers.
func Example() {
	pool, err := mcpool.New(mcpool.Config{URL: "http://127.0.0.1:8080/mcp"})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	reg, err := mcpoolotel.Instrument(pool, mcpoolotel.Options{PoolName: "github"})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()
}
