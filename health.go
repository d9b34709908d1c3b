package mcpool

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// This file holds the background side of self-healing: the connect
// circuit breaker, the maintainer that probes, retires and replenishes, and
// lifetimes. The session transitions it triggers live in session.go.

// breaker is the connect circuit breaker (sony/gobreaker) with a clock:
// it opens once FailureThreshold connects in a row have failed and the
// first of them is BreakerOpenAfter old, so that a server restarting for a
// few seconds (dozens of refused connects in a second, from several pools)
// costs callers latency, not errors, while a server gone for good still
// gets fail-fast errors once the window has passed. A permanent failure
// (see isPermanent) opens it at once.
type breaker struct {
	*gobreaker.TwoStepCircuitBreaker[struct{}]
	cooldown time.Duration
	// firstFailure is when the current run of failures began (UnixNano),
	// and openedAt when the breaker last opened; both written under
	// gobreaker's lock, read anywhere.
	firstFailure atomic.Int64
	openedAt     atomic.Int64
	// tripNow asks the next failure report to open the breaker whatever
	// the counts: the failure is permanent.
	tripNow atomic.Bool
}

// newBreaker returns the connect breaker, or nil when disabled. onChange
// runs under the pool's lock (the breaker is consulted there), so it must
// not log: the maintainer logs the change later.
func newBreaker(s *settings, onChange func(from, to gobreaker.State)) *breaker {
	if s.FailureThreshold < 0 {
		return nil
	}
	b := &breaker{cooldown: s.BreakerCooldown}
	threshold, window := uint32(s.FailureThreshold), s.BreakerOpenAfter
	b.TwoStepCircuitBreaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "mcpool connect",
		MaxRequests: 1, // one probe connect when half-open
		Timeout:     s.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			now := time.Now()
			if c.ConsecutiveFailures == 1 {
				b.firstFailure.Store(now.UnixNano())
			}
			if b.tripNow.Swap(false) {
				return true
			}
			return c.ConsecutiveFailures >= threshold &&
				(window < 0 || now.Sub(time.Unix(0, b.firstFailure.Load())) >= window)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			onChange(from, to)
		},
	})
	return b
}

// verdict returns the function that gives the breaker a connect's verdict,
// marking permanent failures so that they open it at once.
func (b *breaker) verdict(report func(error)) func(error) {
	return func(err error) {
		if err != nil && isPermanent(err) {
			b.tripNow.Store(true)
		}
		report(err)
	}
}

// retryIn is how long until the open breaker lets a probe connect through.
func (b *breaker) retryIn() time.Duration {
	left := b.cooldown - time.Since(time.Unix(0, b.openedAt.Load()))
	return max(left, 0)
}

// logRecovery logs the breaker's latest change and a connect that worked
// after failures. The breaker opening is a warning and its closing news;
// its turns between open and half-open while the server stays down (one
// per BreakerCooldown) are logged at debug level.
func (p *Pool) logRecovery() {
	if note := p.breakerNote.Swap(nil); note != nil {
		switch *note {
		case "open (was closed)":
			p.log.warn("circuit breaker " + *note)
		case "closed (was half-open)", "closed (was open)":
			p.log.info("circuit breaker " + *note)
		default:
			p.log.debug("circuit breaker " + *note)
		}
	}
	if n := p.recovered.Swap(0); n > 0 {
		p.log.info("connected again", "target", p.dialer.target, "after_failures", n)
	}
}

// breakerRetryIn estimates when the open breaker lets a probe through.
func (p *Pool) breakerRetryIn() time.Duration {
	if p.breaker == nil {
		return 0
	}
	return p.breaker.retryIn()
}

// maintain is the pool's one background goroutine: it probes idle and
// suspect sessions, retires expired and idle ones, and keeps MinSessions.
func (p *Pool) maintain() {
	defer p.bg.Done()
	t := time.NewTicker(p.tick())
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.logRecovery()
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				return
			}
			for _, s := range p.sessions {
				if !s.proven && (s.served.Load() || now.Sub(s.created) >= provenAfter) {
					p.proveLocked(s)
				}
			}
			p.expireLocked(now)
			p.retireIdleLocked(now)
			for _, s := range slices.Clone(p.sessions) {
				if s.inFlight > 0 || s.probing {
					continue
				}
				if s.suspect || (p.cfg.HealthCheckInterval > 0 && now.Sub(s.idleSince()) >= p.cfg.HealthCheckInterval) {
					p.startProbeLocked(s)
				}
			}
			p.replenishLocked()
			p.mu.Unlock()
		}
	}
}

// tick is how often maintain runs: often enough for the shortest
// configured period, never more than every 10ms nor less than every second.
func (p *Pool) tick() time.Duration {
	d := time.Second
	// The half-open probe connect starts on a tick (or on an Acquire that
	// finds the cool-down over): half a cool-down late at most.
	for _, v := range []time.Duration{p.cfg.HealthCheckInterval, p.cfg.MaxIdleTime, p.cfg.MaxSessionLifetime, p.cfg.BreakerCooldown} {
		if v > 0 && v/2 < d {
			d = v / 2
		}
	}
	return max(d, 10*time.Millisecond)
}

// expireLocked retires sessions past their lifetime, but only while enough
// unexpired sessions remain for MinSessions: otherwise it connects the
// renewals first and the expired ones keep serving until they arrive.
func (p *Pool) expireLocked(now time.Time) {
	if p.cfg.MaxSessionLifetime <= 0 {
		return
	}
	var expired []*session
	p.nextExpiry = time.Time{}
	for _, s := range p.sessions {
		switch {
		case now.After(s.expires):
			expired = append(expired, s)
		case p.nextExpiry.IsZero() || s.expires.Before(p.nextExpiry):
			p.nextExpiry = s.expires
		}
	}
	if len(expired) == 0 {
		return
	}
	fresh := len(p.sessions) - len(expired)
	for fresh+p.connecting < p.cfg.MinSessions && p.canConnectLocked(fresh) {
		p.startConnectLocked(true)
	}
	// Keep as many expired sessions serving as MinSessions still needs
	// until their renewals connect (connected calls back here): no gap.
	keep := max(p.cfg.MinSessions-fresh, 0)
	for _, s := range expired {
		if keep > 0 {
			keep--
			continue
		}
		p.retireLocked(s, "lifetime")
	}
	if len(p.sessions) > fresh {
		p.nextExpiry = now // expired sessions still serving: look again soon
	}
}

// retireIdleLocked closes sessions above MinSessions idle for MaxIdleTime,
// newest first (selection keeps the oldest busy). A session holding
// resource subscriptions is not idle.
func (p *Pool) retireIdleLocked(now time.Time) {
	if p.cfg.MaxIdleTime <= 0 {
		return
	}
	for i := len(p.sessions) - 1; i >= 0 && len(p.sessions) > p.cfg.MinSessions; i-- {
		s := p.sessions[i]
		if s.inFlight == 0 && !s.probing && s.subs == 0 && now.Sub(s.lastUsed) >= p.cfg.MaxIdleTime {
			p.retireLocked(s, "idle")
		}
	}
}

// connectDelayLocked is the backoff before a connect that follows failed
// ones (none after a success, nor for the half-open breaker's probe, whose
// cool-down was its backoff): exponential with full jitter (see backoff).
//
// Stdio sessions whose child exited by itself (with an exit status, not
// killed by a signal) before they proved themselves (a server that exits
// after every initialize: bad credentials checked lazily, a crash on first
// use) steepen it: the server is up, so retrying soon cannot help, and each
// retry costs a process or a session. The delay is then at least
// youngBackoff of the young deaths in a row, counting the connects already
// under way so that parallel connects spread out: no more than 5 spawns in
// the first 3 s.
func (p *Pool) connectDelayLocked() time.Duration {
	if p.failures == 0 || (p.breaker != nil && p.breaker.State() != gobreaker.StateClosed) {
		return 0
	}
	d := backoff(p.cfg.BackoffInitial, p.cfg.BackoffMax, p.failures)
	if p.youngDeaths > 0 {
		d = max(d, youngBackoff(p.youngDeaths+p.connecting-1))
	}
	return d
}

// youngBackoffInitial and youngBackoffMax shape the backoff after young
// deaths: with equal jitter, a delay in [c/2, c] for
// c = min(youngBackoffMax, youngBackoffInitial×2^(n-1)), so that it grows
// whatever the draw.
const (
	youngBackoffInitial = 500 * time.Millisecond
	youngBackoffMax     = 5 * time.Second
)

func youngBackoff(n int) time.Duration {
	c := youngBackoffInitial << min(max(n-1, 0), 20)
	if c <= 0 || c > youngBackoffMax {
		c = youngBackoffMax
	}
	return c/2 + rand.N(c/2+1)
}
