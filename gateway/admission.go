package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// admission is the gateway's backpressure: a gateway-wide cap on calls in
// flight (a FIFO semaphore) and, per server, a cap on callers queued for it.
// A call that finds both full is refused at once, so nothing queues without
// bound and memory stays flat under overload.
type admission struct {
	slots    *semaphore.Weighted
	max      int64
	inFlight atomic.Int64
	wait     time.Duration // longest a queued caller waits for a slot
}

// admit takes a slot for one call to srv, queueing while srv's queue has
// room. It returns the func that gives the slot back.
func (a *admission) admit(ctx context.Context, srv *server) (func(), error) {
	if !a.slots.TryAcquire(1) {
		// TryAcquire fails while others queue, which keeps the order FIFO.
		if q := srv.queued.Add(1); q > int64(srv.maxQueued) {
			srv.queued.Add(-1)
			srv.refused.Add(1)
			return nil, overloaded(srv.name, fmt.Sprintf("%d calls in flight (cap %d) and %d callers queued for %s (cap %d)",
				a.inFlight.Load(), a.max, q-1, srv.name, srv.maxQueued), time.Second)
		}
		wctx, cancel := context.WithTimeout(ctx, a.wait)
		err := a.slots.Acquire(wctx, 1)
		cancel()
		srv.queued.Add(-1)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			srv.refused.Add(1)
			return nil, overloaded(srv.name, fmt.Sprintf("no slot freed within %v (%d calls in flight, cap %d)", a.wait, a.inFlight.Load(), a.max), time.Second)
		}
	}
	a.inFlight.Add(1)
	srv.inFlight.Add(1)
	return func() {
		srv.inFlight.Add(-1)
		a.inFlight.Add(-1)
		a.slots.Release(1)
	}, nil
}
