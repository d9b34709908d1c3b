// Package drain counts the calls routed to something that may be taken
// out of service (a Group's member, a gateway's server), so that whoever
// takes it out can refuse new calls and wait for the counted ones.
package drain

import (
	"context"
	"sync"
)

// Counter counts calls between Enter and Exit. The zero Counter is ready,
// and it is safe for concurrent use.
type Counter struct {
	mu       sync.Mutex // guards every field below
	active   int
	draining bool
	idle     chan struct{} // made by Drain; closed when draining and no call is active
}

// Enter counts a call and reports true, or reports false, counting
// nothing, once Drain has been called: the caller must route elsewhere.
func (c *Counter) Enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.active++
	return true
}

// Exit ends a call that Enter counted.
func (c *Counter) Exit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	if c.draining && c.active == 0 {
		close(c.idle)
	}
}

// Drain refuses new calls from now on and waits, within ctx, for the
// counted ones to exit. It returns nil when none is left, or ctx's error
// with how many calls were still in flight when ctx ended. Drain may be
// called again (and concurrently); every call waits for the same calls.
func (c *Counter) Drain(ctx context.Context) (inFlight int, err error) {
	c.mu.Lock()
	if !c.draining {
		c.draining = true
		c.idle = make(chan struct{})
		if c.active == 0 {
			close(c.idle)
		}
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return 0, nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.active, ctx.Err()
	}
}
