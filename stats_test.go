package mcpool_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// A pool is failing once it has no session and a connect has failed (a
// server that refuses connections), long before its breaker opens; a pool
// with a session is not; a closed one is. Summed over replicas, a server is
// failing only when no replica has a session.
func TestStatsFailing(t *testing.T) {
	down := newPool(t, mcpool.Config{URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", freePort(t))})
	if down.Stats().Failing() {
		t.Fatal("failing before any connect")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { started <- down.Start(sctx) }()
	eventually(t, "the refused pool to be failing", func() bool { return down.Stats().Failing() })
	if st := down.Stats(); st.Breaker != "closed" {
		t.Errorf("breaker %s when first failing; want closed (it opens after %v of failures)", st.Breaker, mcpool.DefaultBreakerOpenAfter)
	}
	stop()
	<-started

	up := newPool(t, mcpool.Config{URL: httpServer(t, demoserver.New(demoserver.Options{}), false)})
	if err := up.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if up.Stats().Failing() {
		t.Error("a pool with a session is failing")
	}
	if mcpool.SumStats(up.Stats(), down.Stats()).Failing() {
		t.Error("a server with one replica up is failing")
	}
	if !mcpool.SumStats(down.Stats(), down.Stats()).Failing() {
		t.Error("a server with every replica failing is not")
	}
	if err := up.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !up.Stats().Failing() {
		t.Error("a closed pool is not failing")
	}
}
