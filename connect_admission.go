package mcpool

import (
	"container/list"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// ConnectLimiter caps the connects in flight (for a stdio server, the
// process start and the initialize exchange; for an HTTP server, the
// initialize exchange) of every pool that shares it, and queues the rest
// first in first out. A connect's ConnectTimeout starts when it leaves the
// queue, not when it joins it: a burst of connects on a small machine is
// served one batch after another instead of all of them starting at once
// and all missing their timeout.
//
// A limiter may have a parent: a connect then takes a turn here and in the
// parent (and its parent), in that order. A gateway, for instance, gives
// each server a limiter of its own under one shared by every server, which
// caps connects both per server and across the machine.
//
// A queued connect leaves the queue when its pool closes (a pool whose
// Start gives up on its ctx and is closed, say). Figures are in
// [ConnectLimiter.Stats]. A ConnectLimiter is safe for concurrent use; its
// zero value is not usable: make one with [NewConnectLimiter].
type ConnectLimiter struct {
	parent *ConnectLimiter
	max    int

	mu        sync.Mutex
	limit     int // the cap now, 1..max: lowered while connects run slow
	inFlight  int
	queue     list.List // of *connectTurn, oldest first
	maxQueued int
	admitted  uint64
	waited    time.Duration // summed over admitted connects
	maxWait   time.Duration
	held      time.Duration           // moving average of how long a connect holds a turn
	timeout   time.Duration           // the ConnectTimeout of the latest connect
	running   map[*time.Time]struct{} // start times of the connects holding turns
}

// connectTurn is one connect queued or in flight.
type connectTurn struct {
	ready chan struct{} // closed when the turn is handed over
	elem  *list.Element // nil once handed over
}

// ConnectLimiterStats are a [ConnectLimiter]'s figures (its own level, not
// its parent's).
type ConnectLimiterStats struct {
	Max       int `json:"max"`       // the cap on connects in flight
	Limit     int `json:"limit"`     // the cap now (see NewConnectLimiter)
	InFlight  int `json:"inFlight"`  // connects in flight now
	Queued    int `json:"queued"`    // connects waiting for a turn now
	MaxQueued int `json:"maxQueued"` // the most that ever waited at once
	// Admitted counts the connects that got a turn, at once or after
	// waiting.
	Admitted uint64 `json:"admitted"`
	// MeanWait is the mean time Admitted connects waited in the queue
	// (zero for those admitted at once); MaxWait the longest.
	MeanWait time.Duration `json:"meanWaitNs"`
	MaxWait  time.Duration `json:"maxWaitNs"`
	// MeanConnect is a moving average of how long a connect holds its
	// turn (process start and initialize), over the last dozen or so.
	MeanConnect time.Duration `json:"meanConnectNs"`
}

// DefaultConnectLimit is the cap a [ConnectLimiter] made with max 0 has:
// twice the CPUs this process may use (at least 2). A stdio server's
// connect starts a process, often an interpreter that keeps a core busy
// for a good part of a second: more at once only makes each slower.
func DefaultConnectLimit() int { return max(2, 2*runtime.GOMAXPROCS(0)) }

// defaultHTTPConnectLimit is the per-pool cap of a pool of an HTTP server
// without a ConnectLimiter: its connects cost this machine little.
func defaultHTTPConnectLimit() int { return 4 * DefaultConnectLimit() }

// assumedConnect is how long a connect is assumed to hold its turn until
// one has finished, for EstimatedWait, when no ConnectTimeout is known
// (else a quarter of it).
const assumedConnect = time.Second

// NewConnectLimiter returns a limiter that lets up to max connects be in
// flight at once (and, with a parent, only those the parent lets through
// too). max ≤ 0 means [DefaultConnectLimit]. parent may be nil.
//
// The cap adapts to how long connects take: a connect that took more than
// half its ConnectTimeout halves it (down to one connect at a time: on a
// machine busier than its CPU count suggests, connects that share it all
// run slow and miss their timeout together), and each connect done within
// an eighth of its ConnectTimeout raises it by one, up to max.
func NewConnectLimiter(max int, parent *ConnectLimiter) *ConnectLimiter {
	if max <= 0 {
		max = DefaultConnectLimit()
	}
	return &ConnectLimiter{max: max, limit: max, parent: parent}
}

// Max returns the cap on connects in flight at this level.
func (l *ConnectLimiter) Max() int { return l.max }

// Stats returns the limiter's figures at its own level.
func (l *ConnectLimiter) Stats() ConnectLimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ConnectLimiterStats{Max: l.max, Limit: l.limit, InFlight: l.inFlight, Queued: l.queue.Len(), MaxQueued: l.maxQueued,
		Admitted: l.admitted, MaxWait: l.maxWait, MeanConnect: l.held}
	if l.admitted > 0 {
		st.MeanWait = l.waited / time.Duration(l.admitted)
	}
	return st
}

// EstimatedWait is how long a connect that joined the queue now would
// likely wait for its turn, here or at a parent. Each connect in flight is
// expected to end after the mean connect (of those that finished; a
// quarter of ConnectTimeout until one has) less what it has run, or, once
// it has run more than two thirds of the mean, after half as long again
// as it has run (a connect slower than usual is likely slower still);
// turns go to the queue in order as they end, and each queued connect
// holds its turn for the mean. Zero when a turn is free. A caller with a
// deadline sooner than that can refuse at once instead of queueing.
func (l *ConnectLimiter) EstimatedWait() time.Duration { return l.EstimatedWaitBehind(0) }

// EstimatedWaitBehind is EstimatedWait for a connect with ahead more
// connects before it than those queued now (connects about to join the
// queue, say): a caller starting many connects at once can tell how long
// the last would wait before any has queued.
func (l *ConnectLimiter) EstimatedWaitBehind(ahead int) time.Duration {
	var w time.Duration
	for c := l; c != nil; c = c.parent {
		c.mu.Lock()
		w = max(w, c.waitAtLocked(c.queue.Len()+ahead))
		c.mu.Unlock()
	}
	return w
}

// waitAtLocked estimates the wait for a turn at this level of a connect
// with queued connects ahead of it, as EstimatedWait says.
func (l *ConnectLimiter) waitAtLocked(queued int) time.Duration {
	mean := l.held
	if mean == 0 {
		mean = assumedConnect
		if l.timeout > 0 {
			mean = l.timeout / 4
		}
	}
	// When each turn frees: free turns now, the connects in flight as they
	// end. The first to end above the cap (lowered while connects were
	// slow) hand no turn on.
	ends := make([]time.Duration, 0, max(l.limit, len(l.running)))
	for st := range l.running {
		ran := time.Since(*st)
		ends = append(ends, max(mean-ran, ran/2))
	}
	for len(ends) < l.limit {
		ends = append(ends, 0)
	}
	slices.Sort(ends)
	ends = ends[len(ends)-l.limit:]
	return ends[queued%l.limit] + time.Duration(queued/l.limit)*mean
}

// acquire waits for a turn at every level, in order from l up. It returns
// the func that ends the turn, or ctx's error if ctx ends first (the
// connect never started). A nil limiter admits at once.
//
// With queueWait positive the turn must come within it at every level:
// see Config.ConnectQueueWait.
func (l *ConnectLimiter) acquire(ctx context.Context, timeout, queueWait time.Duration) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	var giveUp time.Time
	if queueWait > 0 {
		giveUp = time.Now().Add(queueWait)
	}
	var held []*ConnectLimiter
	for c := l; c != nil; c = c.parent {
		if err := c.take(ctx, giveUp); err != nil {
			for _, h := range held {
				h.give(-1, timeout)
			}
			return nil, err
		}
		held = append(held, c)
	}
	start := time.Now()
	for _, h := range held {
		h.mu.Lock()
		h.timeout = timeout
		if h.running == nil {
			h.running = map[*time.Time]struct{}{}
		}
		h.running[&start] = struct{}{}
		h.mu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			d := time.Since(start)
			for _, h := range held {
				h.mu.Lock()
				delete(h.running, &start)
				h.mu.Unlock()
				h.give(d, timeout)
			}
		})
	}, nil
}

// take waits for one turn at this level. With giveUp set, a connect
// whose turn is estimated to come after it does not queue, and a queued
// one leaves as soon as the estimate (made again every recheckQueue)
// passes it: both fail with errQueueFull.
func (l *ConnectLimiter) take(ctx context.Context, giveUp time.Time) error {
	l.mu.Lock()
	if l.inFlight < l.limit && l.queue.Len() == 0 {
		l.inFlight++
		l.admitted++
		l.mu.Unlock()
		return nil
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return err
	}
	if !giveUp.IsZero() {
		if w := l.waitAtLocked(l.queue.Len()); time.Now().Add(w).After(giveUp) {
			err := l.queueFullLocked(w, time.Until(giveUp))
			l.mu.Unlock()
			return err
		}
	}
	t := &connectTurn{ready: make(chan struct{})}
	t.elem = l.queue.PushBack(t)
	l.maxQueued = max(l.maxQueued, l.queue.Len())
	start := time.Now()
	l.mu.Unlock()
	var recheck <-chan time.Time
	if !giveUp.IsZero() {
		tick := time.NewTicker(recheckQueue)
		defer tick.Stop()
		recheck = tick.C
	}
	var err error
	for err == nil {
		select {
		case <-t.ready:
			l.noteWait(time.Since(start))
			return nil
		case <-ctx.Done():
			err = ctx.Err()
		case now := <-recheck:
			err = l.recheck(t, now, giveUp)
		}
	}
	l.mu.Lock()
	if t.elem == nil {
		// Handed over as we gave up: pass the turn on.
		l.mu.Unlock()
		l.give(-1, 0)
		return err
	}
	l.queue.Remove(t.elem)
	t.elem = nil
	l.mu.Unlock()
	return err
}

// recheckQueue is how often a queued connect with a queue wait estimates
// its turn again.
const recheckQueue = 100 * time.Millisecond

// recheck returns errQueueFull when queued turn t's wait, estimated from
// its place in the queue now, would end after giveUp.
func (l *ConnectLimiter) recheck(t *connectTurn, now, giveUp time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.elem == nil {
		return nil // handed over: ready is closed
	}
	ahead := 0
	for e := l.queue.Front(); e != t.elem; e = e.Next() {
		ahead++
	}
	if w := l.waitAtLocked(ahead); now.Add(w).After(giveUp) {
		return l.queueFullLocked(w, giveUp.Sub(now))
	}
	return nil
}

// queueFullLocked is the error of a connect that gives up its place: its
// turn would come in about w, and only left of its queue wait remains.
func (l *ConnectLimiter) queueFullLocked(w, left time.Duration) error {
	return fmt.Errorf("%w: the turn would come in about %v (%d connects in flight, cap %d, %d queued), past the %v left of Config.ConnectQueueWait",
		ErrConnectQueueFull, w.Round(time.Millisecond), l.inFlight, l.limit, l.queue.Len(), max(left, 0).Round(time.Millisecond))
}

func (l *ConnectLimiter) noteWait(d time.Duration) {
	l.mu.Lock()
	l.waited += d
	l.maxWait = max(l.maxWait, d)
	l.mu.Unlock()
}

// give ends a turn that lasted d (negative: the connect never ran) of a
// connect with the given ConnectTimeout, adapts the cap, and hands the
// turn to the oldest queued connect if the cap allows.
func (l *ConnectLimiter) give(d, timeout time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d >= 0 {
		if l.held == 0 {
			l.held = d
		} else {
			l.held += (d - l.held) / 8
		}
		switch {
		case timeout > 0 && d > timeout/2:
			l.limit = max(1, l.limit/2)
		case timeout > 0 && d < timeout/8:
			l.limit = min(l.max, l.limit+1)
		}
	}
	l.inFlight--
	for l.inFlight < l.limit {
		front := l.queue.Front()
		if front == nil {
			break
		}
		t := l.queue.Remove(front).(*connectTurn)
		t.elem = nil
		l.inFlight++
		l.admitted++
		close(t.ready)
	}
}

// connectLimiterFor returns the limiter of a pool with settings s: the
// Config's, or one of the pool's own sized to its transport.
func connectLimiterFor(s *settings) *ConnectLimiter {
	if s.ConnectLimiter != nil {
		return s.ConnectLimiter
	}
	if s.URL != "" || s.SSEURL != "" {
		return NewConnectLimiter(defaultHTTPConnectLimit(), nil)
	}
	return NewConnectLimiter(0, nil)
}

// dial waits for a turn from the limiter on ctx (the pool's), then dials:
// ConnectTimeout starts only once the turn is granted, and *start is set
// to that moment, so that the connect's measured duration leaves the wait
// out. The turn ends when the connect has succeeded or failed.
func (l *ConnectLimiter) dial(ctx context.Context, d *dialer, version string, timeout, queueWait time.Duration, bg *sync.WaitGroup, start *time.Time) (conn, error) {
	release, err := l.acquire(ctx, timeout, queueWait)
	if err != nil {
		return conn{}, &ConnectError{Target: d.target, Cause: err}
	}
	defer release()
	*start = time.Now()
	return d.dial(ctx, version, timeout, bg)
}
