package mcpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Before: with the breaker half-open and its one probe connect out, the
// loops that start connects spun under the pool's lock until the probe
// ended, so Stats (and every Acquire) blocked for seconds.
func TestHalfOpenBreakerDoesNotSpin(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	var n atomic.Int64
	probing := make(chan struct{})
	release := make(chan struct{})
	p := newPool(t, mcpool.Config{
		NewTransport: func(ctx context.Context) (mcp.Transport, error) {
			switch n.Add(1) {
			case 1:
				return nil, errors.New("refused")
			case 2: // the half-open probe connect: a slow handshake
				close(probing)
				<-release
			}
			ct, st := mcp.NewInMemoryTransports()
			if _, err := srv.Connect(ctx, st, nil); err != nil {
				return nil, err
			}
			return ct, nil
		},
		MinSessions: 1, MaxSessions: 4, MaxCallsPerSession: 1, AcquireTimeout: -1,
		FailureThreshold: 1, BreakerOpenAfter: -1, BreakerCooldown: 20 * time.Millisecond, BackoffInitial: time.Millisecond,
		HealthCheckInterval: -1,
	})
	_ = p.Start(context.Background()) // fails: the breaker opens
	<-probing                         // cool-down passed; the probe connect hangs
	// Waiters now outnumber what the one probe connect will bring.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			l, err := p.Acquire(context.Background())
			if err == nil {
				l.Release()
			}
		})
	}
	eventually(t, "waiters queued", func() bool { return p.Stats().Waiters == 3 })
	// The quickest of three rounds is timed: a loaded machine may
	// deschedule one, a spinning loop holding the lock slows them all.
	quickest := time.Hour
	for range 3 {
		start := time.Now()
		for range 20 {
			p.Stats()
		}
		quickest = min(quickest, time.Since(start))
	}
	if quickest > 100*time.Millisecond {
		t.Fatalf("20 Stats calls took %v at the quickest: the pool's lock is held by a spinning loop", quickest)
	}
	close(release)
	wg.Wait()
}

// Before: a session that died right after connecting reset the failure
// count, so a server that accepts initialize and drops the session at once
// got a tight reconnect loop (48 connects a second), with no backoff and no
// breaker.
func TestFlappingSessionsBackOff(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	var connects atomic.Int64
	var last atomic.Pointer[mcp.ServerSession]
	p := newPool(t, mcpool.Config{
		NewTransport: func(ctx context.Context) (mcp.Transport, error) {
			connects.Add(1)
			ct, st := mcp.NewInMemoryTransports()
			ss, err := srv.Connect(ctx, st, nil)
			if err != nil {
				return nil, err
			}
			go func() { _ = ss.Wait() }()
			last.Store(ss)
			return ct, nil
		},
		MinSessions: 1, HealthCheckInterval: -1, FailureThreshold: 3, BreakerOpenAfter: -1, BreakerCooldown: time.Hour,
		BackoffInitial: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		// 2025-11-25: a 2026-07-28 client opens subscriptions/listen right
		// after connecting, and go-sdk v1.8.0's ServerSession.Close can
		// deadlock against a listen arriving at that moment (Close cancels
		// the listens it knows of, then waits for every request in flight),
		// so the server's drop would never reach the client.
		ProtocolVersion: "2025-11-25",
	})
	// The server drops each session as soon as the handshake is over: the
	// moment the pool reports the connect done (a timer started with the
	// transport could fire mid-handshake on a loaded machine).
	p.Observe(mcpool.Observer{Connect: func(e mcpool.ConnectEvent) {
		if ss := last.Load(); e.Err == nil && ss != nil {
			go ss.Close()
		}
	}})
	_ = p.Start(context.Background())
	eventually(t, "the breaker to open on flapping sessions", func() bool { return p.Stats().Breaker == "open" })
	if n := connects.Load(); n > 4 {
		t.Fatalf("%d connects before the breaker opened at 3 failures", n)
	}
	_, err := p.Acquire(context.Background())
	mustIs(t, err, mcpool.ErrServerUnavailable)
}
