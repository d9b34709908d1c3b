package mcpool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// session is one MCP session and its bookkeeping. id, cs, created, expires,
// ctx and cancel never change; the rest is guarded by Pool.mu.
//
// A session's life, and the only functions that move it (all in this file
// but startConnectLocked, in pool.go, which counts a connect before there
// is a session;
// pool.go admits and selects, health.go decides when to check, and both
// call these):
//
//	state      takes calls  how it gets there                             leaves by
//	---------  -----------  --------------------------------------------  -------------------------------
//	connecting n/a          startConnectLocked (counted, not a session)   connected → serving; or failed
//	serving    yes          connected; a probe that got an answer         beginProbeLocked, suspect,
//	                                                                      leaveLocked
//	suspect    no           suspect: a call timed out or failed in        beginProbeLocked once idle;
//	                        transit                                       leaveLocked
//	probing    no           beginProbeLocked: health check, suspect, or   endProbeLocked → serving, or
//	                        ProbeOnAcquire                                leaveLocked (dead)
//	leaving    no           leaveLocked via markDeadLocked (it died) or   closeLeavingLocked once its
//	                        retireLocked (lifetime, idle)                 calls and probe are done
//	closing    no           closeLeavingLocked, or takeAllLocked (Close)  (closed in the background)
//
// Orthogonal to those, proven: the session served a call, passed a probe,
// lived provenAfter or retired. Until then its connect is not counted a
// success (the breaker and the failure count have not heard of it), so a
// server that accepts initialize and drops the session at once meets
// backoff and the breaker, not a reconnect loop; a session that dies
// unproven counts as a failed connect.
type session struct {
	id      uint64
	cs      *mcp.ClientSession
	created time.Time
	expires time.Time // zero: no lifetime limit
	// ctx is cancelled when the pool aborts the session's calls (Close after
	// DrainTimeout). Calls made through Pool helpers run under it.
	ctx    context.Context
	cancel context.CancelFunc
	// connCancel ends the context the transport was connected with. SSE
	// and the streamable GET stream and DELETE keep using that context, so
	// it lives until the session is closed.
	connCancel context.CancelFunc

	inFlight  int
	lastUsed  time.Time
	lastProbe time.Time
	slots     []uint64 // generation of the lease holding each slot; 0 = free
	free      []int32  // free slot indexes, used as a stack

	// served is set, without the lock, when a call on the session succeeds.
	served atomic.Bool
	proven bool
	report func(error) // the breaker's verdict on its connect, until proven

	probing bool // a probe owns the session: it takes no calls meanwhile
	suspect bool // a call failed oddly: probe as soon as it is idle
	leaving bool // dead or retiring: out of sessions, no new calls
	closing bool // its Close has been started

	closeReason string // why it left service, for observers (observe.go)

	subs int // URIs whose subscription it holds (subscriptions.go)

	// stdio is the transport of a stdio session; exit and stderr are set,
	// when it ends, to how its child exited and the end of its stderr.
	stdio  *stdioTransport
	exit   *os.ProcessState
	stderr string
}

// takesCalls reports whether selection may give the session a new call
// (room aside).
func (s *session) takesCalls() bool { return !s.probing && !s.suspect && !s.leaving }

func (s *session) idleSince() time.Time {
	if s.lastProbe.After(s.lastUsed) {
		return s.lastProbe
	}
	return s.lastUsed
}

func (p *Pool) newSession(c conn) *session {
	now := time.Now()
	s := &session{cs: c.cs, connCancel: c.cancel, created: now, lastUsed: now, stdio: c.stdio}
	if lt := p.cfg.MaxSessionLifetime; lt > 0 {
		// Jitter fixed at creation (pgx#1437): sessions made together do
		// not all retire together.
		s.expires = now.Add(lt - rand.N(lt/10+1))
	}
	s.ctx, s.cancel = context.WithCancel(p.ctx)
	s.slots = make([]uint64, p.cfg.MaxCallsPerSession)
	s.free = make([]int32, p.cfg.MaxCallsPerSession)
	for i := range s.free {
		// Reversed so that slot 0 is taken first: it reads better in a debugger.
		s.free[i] = int32(len(s.free) - 1 - i)
	}
	return s
}

func (s *session) server() string {
	if ir := s.cs.InitializeResult(); ir != nil && ir.ServerInfo != nil {
		return ir.ServerInfo.Name + " " + ir.ServerInfo.Version
	}
	return ""
}

func (s *session) version() string {
	if ir := s.cs.InitializeResult(); ir != nil {
		return ir.ProtocolVersion
	}
	return ""
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
	p.youngDeaths = 0
	p.noteConnectOKLocked()
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
		if s.stdio != nil {
			// A child that exited is reaped at once (the SDK closes the
			// connection when its stdout ends): its exit status and
			// stderr explain the death. One that lingers is not waited for.
			exit, tail := stdioExitWithin(s.stdio, 100*time.Millisecond)
			p.mu.Lock()
			s.exit, s.stderr = exit, tail
			p.mu.Unlock()
		}
		p.markDead(s, fmt.Errorf("session ended: %w", err))
	}()
}

// markDead takes a session out of service at once (serving, suspect or
// probing → leaving). Calls already running on it are left alone; it
// closes when the last returns. Its replacement, if MinSessions or waiters
// need one, counts as a reconnect.
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
		if s.exit != nil && s.exit.Exited() {
			// The child exited by itself (not killed by a signal) before
			// it served: a server that gives up after initialize.
			p.youngDeaths++
		}
		ce := &ConnectError{Target: p.dialer.target, Cause: fmt.Errorf("session died %v after connecting: %w", time.Since(s.created).Round(time.Millisecond), cause),
			Exit: s.exit, Stderr: s.stderr}
		p.noteConnectFailLocked(ce)
		if r := s.report; r != nil {
			s.report = nil
			r(cause)
		}
	}
	p.leaveLocked(s)
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
	s.closeReason = why // observe.go; logged when it closes, outside the lock
	p.leaveLocked(s)
}

// leaveLocked moves a session to leaving: out of p.sessions, closed once
// its calls and any probe are done. Its resource subscriptions go to
// another session.
func (p *Pool) leaveLocked(s *session) {
	s.leaving = true
	p.sessions = slices.DeleteFunc(p.sessions, func(x *session) bool { return x == s })
	if s.subs > 0 {
		p.orphanSubsLocked(s) // subscriptions.go: another session takes them
	}
	if s.inFlight == 0 && !s.probing {
		p.closeLeavingLocked(s)
	} else {
		p.leaving = append(p.leaving, s)
	}
}

// closeLeavingLocked moves a leaving session to closing and closes it in
// the background.
func (p *Pool) closeLeavingLocked(s *session) {
	if s.closing {
		return
	}
	s.closing = true
	p.leaving = slices.DeleteFunc(p.leaving, func(x *session) bool { return x == s })
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		if s.closeReason != "dead" {
			// Logged here, not under p.mu by retireLocked: a slow log
			// handler must not stall Acquire and Release.
			p.log.debug("session retired", "session", s.id, "reason", s.closeReason)
		}
		p.closeSession(s)
	}()
}

// releasedLocked is the session's part of a Release: a leaving session
// whose last call ended closes, an unproven one that served proves itself,
// a suspect one that went idle is probed. It reports whether any of those
// applied.
func (p *Pool) releasedLocked(s *session) bool {
	switch {
	case s.leaving:
		if s.inFlight == 0 && !s.probing {
			p.closeLeavingLocked(s)
		}
	case !s.proven && s.served.Load():
		p.proveLocked(s)
	case s.suspect:
		if s.inFlight == 0 && !s.probing {
			p.startProbeLocked(s)
		}
	default:
		return false
	}
	return true
}

// beginProbeLocked moves an idle serving or suspect session to probing.
func (s *session) beginProbeLocked() { s.probing = true }

// startProbeLocked probes an idle session in the background; it takes no
// calls until the probe ends.
func (p *Pool) startProbeLocked(s *session) {
	s.beginProbeLocked()
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.probe(s.ctx, s)
	}()
}

// probe pings a session that the caller moved to probing, then returns it
// to serving or marks it dead. Any JSON-RPC answer proves the session
// alive: under 2026-07-28 servers need not implement ping and may answer
// "method not found".
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
	// A ping the pool could not send (its token could not be had) says
	// nothing of the session, like one its parent cut short.
	judged := alive || parent.Err() == nil && !isTokenError(err)
	p.endProbeLocked(s, alive, judged)
	p.mu.Unlock()
	if !alive && judged {
		p.counters.probeFailures.Add(1)
		p.markDead(s, fmt.Errorf("health check failed: %w", err))
	}
}

// endProbeLocked ends a probe. A judged probe clears suspicion (an answer
// proves the session; no answer is followed by markDead); one its parent
// cut short leaves the session as it was.
func (p *Pool) endProbeLocked(s *session, alive, judged bool) {
	s.probing = false
	if judged {
		s.suspect = false
		s.lastProbe = time.Now()
	}
	switch {
	case s.leaving:
		if s.inFlight == 0 {
			p.closeLeavingLocked(s)
		}
	case alive:
		p.proveLocked(s)
		p.serveWaitersLocked()
	case !judged:
		p.serveWaitersLocked()
	}
}

// suspect moves a serving session whose call failed in a way that does not
// prove it dead (a network error, a timeout) to suspect: no new calls, and
// a probe as soon as it is idle.
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

// isLeaving reports whether the session has left service (dead or retiring).
func (p *Pool) isLeaving(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.leaving
}

// takeAllLocked moves every session, serving or leaving, to closing for
// Close (close.go), which closes them once the pool's context is cancelled.
func (p *Pool) takeAllLocked() []*session {
	sessions := append(p.sessions, p.leaving...)
	p.sessions, p.leaving = nil, nil
	for _, s := range sessions {
		s.closing = true
	}
	return sessions
}
