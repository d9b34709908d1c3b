package mcpool

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/sony/gobreaker/v2"
)

// This file holds self-healing (issue 3): death detection, replacement,
// health checks, lifetimes, idle retirement and the circuit breaker.

// newBreaker returns the connect breaker, or nil when disabled. onChange
// runs under the pool's lock (the breaker is consulted there), so it must
// not log: the maintainer logs the change later.
func newBreaker(s *settings, onChange func(from, to gobreaker.State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	if s.FailureThreshold < 0 {
		return nil
	}
	threshold := uint32(s.FailureThreshold)
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          "mcpool connect",
		MaxRequests:   1, // one probe connect when half-open
		Timeout:       s.BreakerCooldown,
		ReadyToTrip:   func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		OnStateChange: func(_ string, from, to gobreaker.State) { onChange(from, to) },
	})
}

// breakerRetryIn estimates when the open breaker lets a probe through.
func (p *Pool) breakerRetryIn() time.Duration {
	// gobreaker does not expose its expiry; the cool-down is the bound.
	return p.cfg.BreakerCooldown
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
			if note := p.breakerNote.Swap(nil); note != nil {
				p.log.warn("circuit breaker " + *note)
			}
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
	for _, v := range []time.Duration{p.cfg.HealthCheckInterval, p.cfg.MaxIdleTime, p.cfg.MaxSessionLifetime, p.cfg.BreakerCooldown} {
		if v > 0 && v/2 < d {
			d = v / 2
		}
	}
	return max(d, 10*time.Millisecond)
}

// provenAfter is how long a session must live, if it serves no call and
// passes no probe first, for its connect to count as a success.
const provenAfter = time.Second

// proveLocked counts a session's connect as a success: failures reset, and
// the breaker hears of it (closing it when half-open).
func (p *Pool) proveLocked(s *session) {
	if s.proven {
		return
	}
	s.proven = true
	p.failures, p.lastErr = 0, nil
	if r := s.report; r != nil {
		s.report = nil
		r(nil)
	}
}

// watch notices a session that ends on its own (a stdio child that exits, a
// stream the SDK gave up on).
func (p *Pool) watch(s *session) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		err := s.cs.Wait()
		if err == nil {
			err = mcp.ErrConnectionClosed
		}
		p.markDead(s, fmt.Errorf("session ended: %w", err))
	}()
}

// markDead takes a session out of service at once. Calls already running on
// it are left alone; it closes when the last returns. Its replacement, if
// MinSessions or waiters need one, counts as a reconnect.
func (p *Pool) markDead(s *session, cause error) {
	p.mu.Lock()
	dead := p.markDeadLocked(s, cause)
	p.mu.Unlock()
	if dead {
		// Logged outside the lock: a slow log handler must not stall the pool.
		p.log.warn("session dead", "session", s.id, "error", cause)
	}
}

func (p *Pool) markDeadLocked(s *session, cause error) bool {
	if s.leaving || p.closed {
		return false
	}
	p.counters.deaths.Add(1)
	s.closeReason = "dead" // observe.go
	p.lost++
	if !s.proven {
		// Died before it proved itself: its connect failed after all.
		s.proven = true
		p.failures++
		p.lastErr = &ConnectError{Target: p.dialer.target, Cause: fmt.Errorf("session died %v after connecting: %w", time.Since(s.created).Round(time.Millisecond), cause)}
		if r := s.report; r != nil {
			s.report = nil
			r(cause)
		}
	}
	p.removeLocked(s)
	if p.waiters.Len() > 0 {
		if uerr := p.unavailableLocked(); uerr != nil {
			// The last session is gone and the breaker is open: the
			// waiters would only wait out their timeouts.
			p.failWaitersLocked(uerr)
			return true
		}
	}
	p.replenishLocked()
	return true
}

// retireLocked takes a healthy session out of service (lifetime, idle): it
// finishes its calls, then closes.
func (p *Pool) retireLocked(s *session, why string) {
	p.proveLocked(s) // it lived its life: its connect was a success
	p.counters.retired.Add(1)
	s.closeReason = why // observe.go
	p.log.debug("session retired", "session", s.id, "reason", why)
	p.removeLocked(s)
}

func (p *Pool) removeLocked(s *session) {
	s.leaving = true
	p.sessions = slices.DeleteFunc(p.sessions, func(x *session) bool { return x == s })
	if s.inFlight == 0 && !s.probing {
		p.closeLeavingLocked(s)
	} else {
		p.leaving = append(p.leaving, s)
	}
}

// closeLeavingLocked closes a leaving session in the background.
func (p *Pool) closeLeavingLocked(s *session) {
	if s.closing {
		return
	}
	s.closing = true
	p.leaving = slices.DeleteFunc(p.leaving, func(x *session) bool { return x == s })
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.closeSession(s)
	}()
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
		if !p.startConnectLocked(nil, true) {
			break
		}
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
// newest first (selection keeps the oldest busy).
func (p *Pool) retireIdleLocked(now time.Time) {
	if p.cfg.MaxIdleTime <= 0 {
		return
	}
	for i := len(p.sessions) - 1; i >= 0 && len(p.sessions) > p.cfg.MinSessions; i-- {
		s := p.sessions[i]
		if s.inFlight == 0 && !s.probing && now.Sub(s.lastUsed) >= p.cfg.MaxIdleTime {
			p.retireLocked(s, "idle")
		}
	}
}

// startProbeLocked probes an idle session in the background; it takes no
// calls until the probe ends.
func (p *Pool) startProbeLocked(s *session) {
	s.probing = true
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.probe(s.ctx, s)
	}()
}

// probe pings a session that the caller marked probing, then returns it to
// service or marks it dead. Any JSON-RPC answer proves the session alive:
// under 2026-07-28 servers need not implement ping and may answer "method
// not found".
//
// parent bounds the probe besides PingTimeout: the session's own context
// for background probes, the caller's for ProbeOnAcquire. A probe cut short
// by its parent judges nothing.
func (p *Pool) probe(parent context.Context, s *session) {
	p.counters.probes.Add(1)
	ctx, cancel := context.WithTimeout(parent, p.cfg.PingTimeout)
	stop := context.AfterFunc(s.ctx, cancel) // Close aborts acquire-time probes too
	err := s.cs.Ping(ctx, nil)
	stop()
	cancel()
	alive := err == nil || isServerAnswer(err)
	p.mu.Lock()
	s.probing = false
	if !alive && parent.Err() != nil {
		if s.leaving && s.inFlight == 0 {
			p.closeLeavingLocked(s)
		} else if !s.leaving {
			p.serveWaitersLocked()
		}
		p.mu.Unlock()
		return
	}
	s.suspect = false
	s.lastProbe = time.Now()
	if s.leaving {
		if s.inFlight == 0 {
			p.closeLeavingLocked(s)
		}
	} else if alive {
		p.proveLocked(s)
		p.serveWaitersLocked()
	}
	p.mu.Unlock()
	if !alive {
		p.counters.probeFailures.Add(1)
		p.markDead(s, fmt.Errorf("health check failed: %w", err))
	}
}

// suspect asks for a probe of a session whose call failed in a way
// that does not prove it dead (a network error, a timeout).
func (p *Pool) suspect(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.leaving || p.closed {
		return
	}
	s.suspect = true
	if s.inFlight == 0 && !s.probing {
		p.startProbeLocked(s)
	}
}

func (p *Pool) isLeaving(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.leaving
}
