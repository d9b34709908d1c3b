package mcpool_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/mcpool/mcpool"
)

// Leak detection, and an Observer of one's own.
func ExamplePool_Observe() {
	pool, err := mcpool.New(mcpool.Config{
		URL:           "http://127.0.0.1:8080/mcp",
		LeakThreshold: time.Minute, // warn, with the acquirer's stack, of leases held longer
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	pool.Observe(mcpool.Observer{
		CallEnd: func(ctx context.Context, e mcpool.CallEvent) {
			if e.Duration > time.Second {
				slog.WarnContext(ctx, "slow tool call", "tool", e.Tool, "outcome", e.Outcome, "took", e.Duration)
			}
		},
	})
	st := pool.Stats()
	_, _ = st.Health, st.HealthScore // "connecting" and 0 before the first session
}
