package mcpool

import (
	"context"
	"errors"
	"maps"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A resource subscription belongs to one MCP session: the server keeps it
// per session (resources/subscribe, MCP spec 2025-11-25 "Resources"), and
// under 2026-07-28 the SDK's ClientSession holds it as a subscriptions/listen
// stream that only that ClientSession can end. So the pool pins each URI to
// the session that took its subscribe, sends the unsubscribe there, and
// subscribes again on another session when that one leaves the pool.
//
// Pool.subs maps each URI to its subscription; a subscription is in one of
// three states, all under Pool.mu:
//
//	held      s != nil               the session s holds it upstream
//	sending   busy                   a subscribe (a caller's, or the healer's) is
//	                                 in flight; done is closed when it settles
//	orphaned  s == nil && !busy      its session left the pool: the healer
//	                                 subscribes it again on another
//
// ended marks one that Unsubscribe removed while it was sending: the sender,
// not the healer, ends it upstream and forgets it (an Unsubscribe wins).
type subscription struct {
	uri    string
	params *mcp.SubscribeParams // the first Subscribe's, sent again when healing
	s      *session
	busy   bool
	done   chan struct{} // closed when a sending subscription settles
	ended  bool
}

// Subscribe subscribes the pool to updates of params.URI
// (resources/subscribe, MCP spec 2025-11-25 "Resources"; under 2026-07-28
// the SDK opens a subscriptions/listen stream instead). The server's
// notifications/resources/updated reach ClientHandlers.ResourceUpdated of
// the pool's Config.
//
// The subscribe runs on a session the pool selects, as [Pool.Do] runs
// requests (one lost with its session is tried on another, within ctx, up
// to MaxSessions times: subscribing twice is harmless), and the
// subscription stays pinned to that session:
// [Pool.Unsubscribe] goes to it. A pool holds one upstream subscription per
// URI: subscribing a URI it already holds (or is subscribing) returns nil
// once that subscription is in place.
//
// Subscriptions heal: when the session holding one leaves the pool (it died,
// the server forgot it, its lifetime ended, a health check failed), the
// pool subscribes the URI again on another session in the background,
// connecting one if need be, each attempt bounded by twice ConnectTimeout
// and failures backed off as connects are (BackoffInitial to BackoffMax),
// until it succeeds, the URI is unsubscribed or the pool closes. Updates the
// server sent meanwhile are lost; read the resource again after a
// reconnect if every change matters. A session holding subscriptions is not
// retired for idleness. What does not heal: a server that drops the
// subscription while keeping the session (and, under 2026-07-28, a listen
// stream that ends while its session lives on).
//
// Errors: those of [Pool.Do] (ErrPoolClosed, an [*ExhaustedError], the
// server's JSON-RPC error when it does not support subscriptions…); the
// URI is then not subscribed.
func (p *Pool) Subscribe(ctx context.Context, params *mcp.SubscribeParams) error {
	if params == nil || params.URI == "" {
		return errors.New("mcpool: Subscribe: params.URI is empty")
	}
	var sub *subscription
	for sub == nil {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrPoolClosed
		}
		if p.subs == nil {
			p.subs = make(map[string]*subscription)
		}
		have := p.subs[params.URI]
		if have == nil {
			sub = &subscription{uri: params.URI, params: cloneSubscribe(params), busy: true, done: make(chan struct{})}
			p.subs[params.URI] = sub
			p.mu.Unlock()
			break
		}
		if !have.busy {
			// Held, or orphaned and healing: subscribed as far as the
			// caller can tell.
			p.mu.Unlock()
			return nil
		}
		done := have.done
		p.mu.Unlock()
		select {
		case <-done: // settled: look again
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s, err := p.sendSubscribe(ctx, sub.params)
	p.settle(sub, s, err, true)
	return err
}

// Unsubscribe ends a subscription made with [Pool.Subscribe]
// (resources/unsubscribe; under 2026-07-28 the SDK ends the URI's
// subscriptions/listen stream): it is sent on the session that holds the
// subscription, not one the pool selects, and the pool forgets the URI. If
// that session has left the pool, the subscription went with it and
// Unsubscribe returns nil; so it does for a URI the pool is not subscribed
// to. An Unsubscribe that arrives while the URI's subscribe is in flight
// (a caller's, or the pool re-subscribing after its session left) wins: it
// waits, within ctx, for that subscribe to end and be undone.
//
// Errors: the server's JSON-RPC error, or a transport error that did not
// end the session; the pool has forgotten the URI all the same.
func (p *Pool) Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error {
	if params == nil || params.URI == "" {
		return errors.New("mcpool: Unsubscribe: params.URI is empty")
	}
	p.mu.Lock()
	sub := p.subs[params.URI]
	if sub == nil {
		p.mu.Unlock()
		return nil
	}
	sub.ended = true
	if sub.busy {
		// The sender undoes it once its subscribe settles (see settle).
		done := sub.done
		p.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	delete(p.subs, params.URI)
	s := sub.s
	if s != nil {
		sub.s = nil
		s.subs--
	}
	p.mu.Unlock()
	if s == nil {
		return nil // orphaned: it went with its session
	}
	return p.unsubscribeOn(ctx, s, params)
}

// sendSubscribe sends a subscribe through the pool's call path and returns
// the session that took it: nil if the pool closed under it. A request
// that was lost with its session is tried again, up to MaxSessions times:
// subscribing twice is harmless.
func (p *Pool) sendSubscribe(ctx context.Context, params *mcp.SubscribeParams) (*session, error) {
	var s *session
	call := func(ctx context.Context, cs *mcp.ClientSession) error {
		// The SDK writes protocol metadata into the params it is given.
		if err := cs.Subscribe(ctx, cloneSubscribe(params)); err != nil {
			return err
		}
		s = p.sessionOf(cs)
		return nil
	}
	o := p.do(ctx, call)
	for attempt := 0; o.lost && ctx.Err() == nil && attempt < p.cfg.MaxSessions; attempt++ {
		p.counters.retries.Add(1)
		o = p.do(ctx, call)
	}
	return s, o.err
}

// settle records how a subscribe for sub ended: s took it (err nil), or
// it failed. A caller's failed subscribe is forgotten; the healer's stays
// orphaned, to be tried again. One that Unsubscribe ended meanwhile is
// unsubscribed on s and forgotten. It reports whether s now holds it.
func (p *Pool) settle(sub *subscription, s *session, err error, byCaller bool) bool {
	p.mu.Lock()
	if err == nil && sub.ended && s != nil {
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout)
		_ = p.unsubscribeOn(ctx, s, &mcp.UnsubscribeParams{URI: sub.uri, Meta: maps.Clone(sub.params.Meta)})
		cancel()
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	sub.busy = false
	close(sub.done)
	switch {
	case sub.ended || err != nil && byCaller:
		if p.subs[sub.uri] == sub {
			delete(p.subs, sub.uri)
		}
	case err != nil:
		// The healer's attempt failed: it stays orphaned.
	case s == nil || s.leaving || s.closing:
		// Its session left as it was subscribed: heal it.
		p.startHealLocked()
	default:
		sub.s = s
		s.subs++
		return true
	}
	return false
}

// unsubscribeOn sends an unsubscribe on s itself. The session may be
// carrying its full share of calls: the request goes alongside them
// (JSON-RPC multiplexes), under s's context so that Close cuts it short.
// A session that has left, or that the request finds gone, took the
// subscription with it: nil.
func (p *Pool) unsubscribeOn(ctx context.Context, s *session, params *mcp.UnsubscribeParams) error {
	if p.isLeaving(s) {
		return nil
	}
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	cp := *params
	cp.Meta = maps.Clone(params.Meta)
	err := s.cs.Unsubscribe(cctx, &cp)
	stop()
	cancel()
	switch {
	case err == nil:
		return nil
	case isSessionGone(err) || breaksSession(err):
		p.markDead(s, err)
		return nil
	case s.ctx.Err() != nil || p.isLeaving(s):
		return nil
	}
	return err
}

// sessionOf returns the pool's session for cs, or nil once Close took it.
func (p *Pool) sessionOf(cs *mcp.ClientSession) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range [][]*session{p.sessions, p.leaving} {
		for _, s := range l {
			if s.cs == cs {
				return s
			}
		}
	}
	return nil
}

// orphanSubsLocked is leaveLocked's part for a session holding
// subscriptions: they lose their session and the healer takes them.
func (p *Pool) orphanSubsLocked(s *session) {
	for _, sub := range p.subs {
		if sub.s == s {
			sub.s = nil
		}
	}
	s.subs = 0
	p.startHealLocked()
}

// startHealLocked starts the healer unless it runs or the pool is closed.
func (p *Pool) startHealLocked() {
	if p.healing || p.closed {
		return
	}
	p.healing = true
	p.bg.Add(1)
	go p.heal()
}

// heal subscribes orphaned URIs again, one at a time, until none is left
// or the pool closes. Each attempt is bounded by 2×ConnectTimeout; after a
// failure it backs off as connects do.
func (p *Pool) heal() {
	defer p.bg.Done()
	failures := 0
	for {
		p.mu.Lock()
		var sub *subscription
		if !p.closed {
			for _, x := range p.subs {
				if x.s == nil && !x.busy && !x.ended {
					sub = x
					break
				}
			}
		}
		if sub == nil {
			p.healing = false
			p.mu.Unlock()
			return
		}
		sub.busy, sub.done = true, make(chan struct{})
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, 2*p.cfg.ConnectTimeout)
		s, err := p.sendSubscribe(ctx, sub.params)
		cancel()
		if p.settle(sub, s, err, false) {
			failures = 0
			p.log.debug("subscription renewed on another session", "uri", sub.uri, "session", s.id)
			continue
		}
		p.mu.Lock()
		ended := sub.ended
		p.mu.Unlock()
		if ended {
			continue
		}
		// It failed, or the session that took it left at once: back off.
		failures++
		p.log.debug("renewing a subscription failed", "uri", sub.uri, "error", err)
		if sleepCtx(p.ctx, backoff(p.cfg.BackoffInitial, p.cfg.BackoffMax, failures)) != nil {
			p.mu.Lock()
			p.healing = false
			p.mu.Unlock()
			return
		}
	}
}

func cloneSubscribe(in *mcp.SubscribeParams) *mcp.SubscribeParams {
	out := *in
	out.Meta = maps.Clone(in.Meta)
	return &out
}
