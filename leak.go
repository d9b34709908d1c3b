package mcpool

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// leaseTracker remembers the leases held, when LeakThreshold or a Release
// observer asks for it: when each was taken, and, for leak detection, the
// stack of the code that took it and a timer that reports it if it is held
// past the threshold (HikariCP's leak detection).
type leaseTracker struct {
	threshold time.Duration // 0: no leak detection
	log       logger
	leaked    atomic.Uint64

	mu     sync.Mutex
	held   map[uint64]*heldLease // by lease generation, unique within a pool
	closed bool                  // the pool closed: no more leak warnings
}

type heldLease struct {
	at    time.Time
	timer *time.Timer // nil without leak detection
}

func newLeaseTracker(threshold time.Duration, log logger) *leaseTracker {
	return &leaseTracker{threshold: threshold, log: log, held: map[uint64]*heldLease{}}
}

// leakStackDepth bounds the frames kept of an acquirer's stack.
const leakStackDepth = 32

// acquired records a lease. It runs on the acquirer's goroutine (deferred
// in Acquire), so the stack captured is the acquirer's.
func (t *leaseTracker) acquired(l *Lease, now time.Time) {
	h := &heldLease{at: now}
	gen, session := l.gen, l.s.id
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.threshold > 0 && !t.closed {
		pcs := make([]uintptr, leakStackDepth)
		// Skip runtime.Callers, acquired, acquireEnd and Acquire: the stack
		// starts at the code that called Acquire.
		pcs = pcs[:runtime.Callers(4, pcs)]
		// Started under t.mu, so that the timer's func, which takes it
		// too, always finds the lease recorded.
		h.timer = time.AfterFunc(t.threshold, func() { t.leak(gen, session, pcs) })
	}
	t.held[gen] = h
}

// released forgets a lease and reports how long it was held; ok is false
// for a lease it never saw (taken before tracking began, or released
// already).
func (t *leaseTracker) released(gen uint64) (held time.Duration, ok bool) {
	t.mu.Lock()
	h, ok := t.held[gen]
	delete(t.held, gen)
	t.mu.Unlock()
	if !ok {
		return 0, false
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	return time.Since(h.at), true
}

// stop ends leak detection when the pool closes: the timers of leases
// still held are stopped, so that none warns after Close. Leases are still
// recorded, for Release observers.
func (t *leaseTracker) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, h := range t.held {
		if h.timer != nil {
			h.timer.Stop()
			h.timer = nil
		}
	}
}

// leak reports a lease held past the threshold, once.
func (t *leaseTracker) leak(gen, session uint64, pcs []uintptr) {
	t.mu.Lock()
	h, ok := t.held[gen]
	if ok {
		h.timer = nil // fired: nothing to stop any more
	}
	closed := t.closed
	t.mu.Unlock()
	if !ok || closed {
		return // released meanwhile, or the pool closed
	}
	t.leaked.Add(1)
	t.log.warn("lease held longer than LeakThreshold: is a Release missing? stack: where it was acquired",
		"threshold", t.threshold, "session", session, "stack", formatStack(pcs))
}

func formatStack(pcs []uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		b.WriteString(f.Function)
		b.WriteString("\n\t")
		b.WriteString(f.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(f.Line))
		b.WriteByte('\n')
		if !more {
			break
		}
	}
	return b.String()
}
