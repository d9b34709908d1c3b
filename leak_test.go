package mcpool

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// Close stops the leak timers of leases still held, and a timer that fired
// as Close stopped it does not warn: no leak warnings after Close.
func TestLeakTimersStopOnClose(t *testing.T) {
	url := tokenTestServer(t, nil)
	p, err := New(Config{URL: url, LeakThreshold: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	timer := func() *time.Timer {
		p.leases.mu.Lock()
		defer p.leases.mu.Unlock()
		if h := p.leases.held[l.gen]; h != nil {
			return h.timer
		}
		return nil
	}
	if timer() == nil {
		t.Fatal("no leak timer for a lease held with LeakThreshold set")
	}
	ended, end := context.WithCancel(ctx)
	end()
	_ = p.Close(ended) // the lease is held: the teardown goes on
	if timer() != nil {
		t.Fatal("a leak timer is still pending after Close")
	}
	p.leases.leak(l.gen, l.s.id, nil) // as if it had fired during Close
	if n := p.leases.leaked.Load(); n != 0 {
		t.Fatalf("%d leaks reported after Close", n)
	}
	l.Release()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
