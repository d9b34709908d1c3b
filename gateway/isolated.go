package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Isolated servers: each downstream session gets a pool of its own (one
// upstream session, calls multiplexed on it), taken from the server's
// pre-warmed spares, and closed when the downstream session ends (its Wait
// returns: closed by the client, idled out by SessionIdleTimeout, or the
// 2026-07-28 request it stood for is answered).

type isolation struct {
	mu       sync.Mutex
	sessions map[*mcp.ServerSession]*isoSession
	n        int // upstream pools of downstream sessions, connecting included
	closed   bool
	closing  sync.WaitGroup
	// transports: *mcpool.Pool -> *resumeTransport, for the pools of
	// resumable servers (resume.go).
	transports sync.Map
}

type isoSession struct {
	mu    sync.Mutex
	pools map[*server]*isoPool
	done  bool // the downstream session ended: no new pools
}

// isoPool is one downstream session's pool for one server. ready is closed
// by the caller that connects it, once p or err is set; other callers wait
// on ready (or their own ctx) without holding a lock.
type isoPool struct {
	ready    chan struct{}
	p        *mcpool.Pool
	err      error
	lastUsed atomic.Int64 // unix nanoseconds of the last call's start
}

// isolatedConfig is srv's template for one downstream session's pool.
func (g *Gateway) isolatedConfig(srv *server) mcpool.Config {
	cfg := srv.Config
	cfg.MinSessions, cfg.MaxSessions = 1, 1
	cfg.MaxIdleTime = -1
	cfg.OnProgress = g.OnProgress
	// ClientHandlers: set per pool by warmPool, for the pool's own client.
	// A session's own list_changed (a stateful server's per-session tools)
	// is that session's business: it must not invalidate the catalog shared
	// with other replicas, nor the merged lists, which come from Upstream.
	cfg.CatalogStore, cfg.CatalogKey, cfg.OnListChanged = nil, "", nil
	return cfg
}

// isolatedPool returns ss's own pool for srv, taking a spare or, when none
// is ready, connecting one on the caller's time. No lock is held during a
// connect: a session's concurrent first calls wait for the first one's.
func (g *Gateway) isolatedPool(ctx context.Context, srv *server, ss *mcp.ServerSession) (*mcpool.Pool, error) {
	if ss == nil {
		return nil, errors.New("gateway: isolated server called outside a session")
	}
	ref, err := g.isolatedHome(srv, ss) // portable.go
	if err != nil {
		return nil, err
	}
	for {
		g.iso.mu.Lock()
		if g.iso.closed {
			g.iso.mu.Unlock()
			return nil, mcpool.ErrPoolClosed
		}
		is := g.iso.sessions[ss]
		if is == nil {
			is = &isoSession{pools: map[*server]*isoPool{}}
			g.iso.sessions[ss] = is
			g.iso.closing.Add(1)
			go g.releaseWhenDone(ss, is)
		}
		is.mu.Lock()
		if is.done {
			is.mu.Unlock()
			g.iso.mu.Unlock()
			return nil, mcpool.ErrPoolClosed
		}
		e := is.pools[srv]
		if e != nil {
			is.mu.Unlock()
			g.iso.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.err != nil {
				// The connecting caller failed (perhaps its own ctx
				// ended): try again on this caller's time.
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue
			}
			e.lastUsed.Store(time.Now().UnixNano())
			return e.p, nil
		}
		is.mu.Unlock()
		victim, err := g.reserveIsolated(srv)
		if err != nil {
			g.iso.mu.Unlock()
			return nil, err
		}
		is.mu.Lock()
		e = &isoPool{ready: make(chan struct{})}
		e.lastUsed.Store(time.Now().UnixNano())
		is.pools[srv] = e
		is.mu.Unlock()
		g.iso.mu.Unlock()
		if victim != nil {
			g.log.Debug("isolated: closing the least recently used idle upstream session to make room", "server", srv.name)
			go func() {
				defer g.iso.closing.Done()
				g.forgetPool(victim)
				_ = victim.Close(context.Background())
			}()
		}

		var p *mcpool.Pool
		if ref != nil {
			// The session's upstream session, made by the replica that
			// created it: resumed, never replaced (resume.go).
			p, err = g.resumeIsolated(ctx, srv, legacyVersion(srv, ss), asksOf(ss), ref)
		} else {
			p, err = g.connectIsolated(ctx, srv, legacyVersion(srv, ss), asksOf(ss)) // relay_requests.go
		}
		is.mu.Lock()
		if err != nil {
			delete(is.pools, srv)
		}
		e.p, e.err = p, err
		is.mu.Unlock()
		if err == nil {
			g.ownPool(p, ss) // relay_requests.go
		}
		close(e.ready)
		if err != nil {
			g.iso.mu.Lock()
			g.iso.n--
			g.iso.mu.Unlock()
			return nil, err
		}
		return p, nil
	}
}

// reserveIsolated counts one more isolated upstream session. At
// MaxIsolatedSessions it takes the least recently used idle one from its
// downstream session (whose next call connects again) and returns its pool
// for the caller to close; with none idle it refuses as overloaded. The
// caller holds g.iso.mu.
func (g *Gateway) reserveIsolated(srv *server) (*mcpool.Pool, error) {
	if g.iso.n < g.opts.MaxIsolatedSessions {
		g.iso.n++
		return nil, nil
	}
	var (
		lruSess *isoSession
		lruSrv  *server
		lru     *isoPool
	)
	for _, is := range g.iso.sessions {
		is.mu.Lock()
		for s, e := range is.pools {
			select {
			case <-e.ready:
			default:
				continue // connecting
			}
			if e.p == nil || e.p.Stats().CallsInFlight > 0 {
				continue
			}
			if lru == nil || e.lastUsed.Load() < lru.lastUsed.Load() {
				lruSess, lruSrv, lru = is, s, e
			}
		}
		is.mu.Unlock()
	}
	if lru == nil {
		srv.refused.Add(1)
		return nil, overloaded(srv.name, fmt.Sprintf("%d isolated upstream sessions open (cap %d), all busy", g.iso.n, g.opts.MaxIsolatedSessions), time.Second)
	}
	lruSess.mu.Lock()
	if lruSess.pools[lruSrv] == lru {
		delete(lruSess.pools, lruSrv)
	}
	lruSess.mu.Unlock()
	g.iso.closing.Add(1) // done by the caller's close
	return lru.p, nil
}

// connectIsolated takes one of srv's spares or connects a pool. version
// is the protocol version the pool must speak ("" any): a client of the
// 2025-11-25 era gets an upstream session of its era, so that the server
// may send it requests while serving its calls (relay_requests.go).
func (g *Gateway) connectIsolated(ctx context.Context, srv *server, version string, asks asks) (*mcpool.Pool, error) {
	if version != "" {
		srv.spareVersion.Store(version) // spares follow the clients served
	}
	srv.spareAsks.Store(asks)
	srv.arrivals.add(time.Now())
	var p *mcpool.Pool
	select {
	case p = <-srv.spares:
	default:
	}
	select {
	case srv.refill <- struct{}{}:
	default:
	}
	if p != nil && (version == "" || p.Stats().ProtocolVersion == version) && g.relay.spareAsks(p) == asks {
		return p, nil
	}
	if p != nil {
		g.forgetPool(p)
		_ = p.Close(context.Background())
	}
	if st := srv.Upstream.Stats(); st.Sessions == 0 && (st.Status == mcpool.StatusUnavailable || st.Breaker == "half-open") {
		// The server's breaker (its catalog pool's; with replicas,
		// every replica's) is open, or lets one probe through, with no
		// session: a new pool would ride out the failing connects
		// again, BreakerOpenAfter for each downstream session, before
		// failing the same way. Refused until the probe connects
		// (within BreakerCooldown of the server's return).
		return nil, unavailableNow(srv, st)
	}
	lim := srv.Config.ConnectLimiter
	// Callers that arrive together all check before any has queued: each
	// counts those ahead of it that have not queued yet.
	n := srv.arrivals.connecting.Add(1)
	defer srv.arrivals.connecting.Add(-1)
	cs := lim.Stats()
	ahead := max(0, int(n)-1-cs.InFlight-cs.Queued)
	if w := lim.EstimatedWaitBehind(ahead); w > g.opts.QueueWait {
		srv.refused.Add(1)
		st := lim.Stats()
		return nil, overloaded(srv.name, fmt.Sprintf("a new upstream session would wait about %v for a connect turn (%d connects in flight, cap %d, %d queued; queue wait %v)",
			w.Round(time.Millisecond), st.InFlight, st.Max, st.Queued, g.opts.QueueWait), w)
	}
	bctx, cancel := context.WithTimeout(ctx, g.opts.QueueWait+orDur(srv.Config.ConnectTimeout, mcpool.DefaultConnectTimeout))
	defer cancel()
	// The queue wait bounds the connect's wait for its turn: the limiter
	// refuses it as soon as its estimate, made again while it queues,
	// says the turn will come later (connects slowing down during a
	// burst, say), so that a refusal comes early, not after the wait.
	p, err := g.warmPool(bctx, srv, version, asks, g.opts.QueueWait, nil, nil)
	if errors.Is(err, mcpool.ErrConnectQueueFull) {
		srv.refused.Add(1)
		return nil, overloaded(srv.name, "no connect turn for a new upstream session within the queue wait ("+g.opts.QueueWait.String()+"): "+err.Error(),
			max(lim.EstimatedWait(), time.Second))
	}
	var ce *mcpool.ConnectError
	if err != nil && ctx.Err() == nil && bctx.Err() != nil && !errors.As(err, &ce) {
		// The budget ran out with no connect failed: queued all along.
		srv.refused.Add(1)
		return nil, overloaded(srv.name, fmt.Sprintf("no connect turn within the queue wait (%v)", g.opts.QueueWait), max(lim.EstimatedWait(), time.Second))
	}
	return p, err
}

// resumeIsolated connects a pool to the upstream session ref of srv.
func (g *Gateway) resumeIsolated(ctx context.Context, srv *server, version string, asks asks, ref *upstreamRef) (*mcpool.Pool, error) {
	bctx, cancel := context.WithTimeout(ctx, g.opts.QueueWait+orDur(srv.Config.ConnectTimeout, mcpool.DefaultConnectTimeout))
	defer cancel()
	return g.warmPool(bctx, srv, version, asks, g.opts.QueueWait, ref, nil)
}

// warmPool connects a pool for one downstream session; asks is what its
// client answers (spares: everything), the capabilities the pool declares;
// queueWait bounds its connect's wait for a turn (0: none, for spares). For
// a resumable server (resume.go) the pool's HTTP transport can be bound to
// an upstream session: ref, when set, is resumed rather than connected.
// warm, when set, is a spare's: until it is true the pool's warnings are
// logged at debug level (warmingHandler).
func (g *Gateway) warmPool(ctx context.Context, srv *server, version string, asks asks, queueWait time.Duration, ref *upstreamRef, warm *atomic.Bool) (*mcpool.Pool, error) {
	cfg := g.isolatedConfig(srv)
	if warm != nil {
		cfg.Logger = slog.New(warmingHandler{cmp.Or(cfg.Logger, slog.Default()).Handler(), warm})
	}
	cfg.ConnectQueueWait = queueWait
	if version != "" && cfg.ProtocolVersion == "" {
		cfg.ProtocolVersion = version
	}
	if ref != nil {
		cfg.ProtocolVersion = ref.version() // the session's own: no discover
	}
	owner := &isoOwner{}
	g.relayConfig(srv, &cfg, owner) // relay_requests.go
	cfg.ClientHandlers = asks.restrict(cfg.ClientHandlers)
	var rt *resumeTransport
	if g.resumable(srv) && cfg.HTTPClient != nil {
		rt = &resumeTransport{base: cfg.HTTPClient.Transport, server: srv.name}
		if ref != nil {
			rt.bind(ref)
		}
		hc := *cfg.HTTPClient
		hc.Transport = rt
		cfg.HTTPClient = &hc
	}
	p, err := mcpool.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: server %s: %w", srv.name, err)
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Close(context.Background())
		return nil, err
	}
	owner.asks = asks
	g.relay.owners.Store(p, owner)
	if rt != nil {
		g.iso.transports.Store(p, rt)
	}
	return p, nil
}

// releaseWhenDone closes is's pools when ss ends, waiting for those still
// connecting.
func (g *Gateway) releaseWhenDone(ss *mcp.ServerSession, is *isoSession) {
	defer g.iso.closing.Done()
	_ = ss.Wait()
	g.iso.mu.Lock()
	delete(g.iso.sessions, ss)
	is.mu.Lock()
	is.done = true
	pools := is.pools
	is.pools = map[*server]*isoPool{}
	is.mu.Unlock()
	g.iso.mu.Unlock()
	for srv, e := range pools {
		<-e.ready
		if e.p == nil {
			continue // failed, and uncounted by its caller
		}
		g.iso.mu.Lock()
		g.iso.n--
		g.iso.mu.Unlock()
		g.forgetPool(e.p)
		if err := e.p.Close(context.Background()); err != nil {
			g.log.Debug("isolated: closing a session's pool", "server", srv.name, "error", err)
		}
	}
}

// isolatedPools returns the ready pools of every downstream session for
// srv, and how many isolated upstream sessions are open across servers.
// It holds the locks only to copy pointers: no I/O.
func (g *Gateway) isolatedPools(srv *server) ([]*mcpool.Pool, int) {
	g.iso.mu.Lock()
	defer g.iso.mu.Unlock()
	var out []*mcpool.Pool
	for _, is := range g.iso.sessions {
		is.mu.Lock()
		if e := is.pools[srv]; e != nil {
			select {
			case <-e.ready:
				if e.p != nil {
					out = append(out, e.p)
				}
			default:
			}
		}
		is.mu.Unlock()
	}
	return out, g.iso.n
}

// closeAll waits until every downstream session's pools are closed; Close
// has ended the sessions already.
func (is *isolation) closeAll(ctx context.Context) error {
	is.mu.Lock()
	is.closed = true
	is.mu.Unlock()
	done := make(chan struct{})
	go func() { is.closing.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		<-done // the pools' own drain timeouts bound this
		return ctx.Err()
	}
}

// arrivalRate is a moving rate of new downstream sessions needing an
// isolated server's upstream session, per second, decaying with a time
// constant of arrivalTau.
type arrivalRate struct {
	mu   sync.Mutex
	rate float64
	at   time.Time
	// connecting counts the downstream sessions connecting an upstream
	// session of their own (queued for a turn included).
	connecting atomic.Int64
}

const arrivalTau = 5 * time.Second

func (a *arrivalRate) add(now time.Time) {
	a.mu.Lock()
	a.rate = a.decayed(now) + 1/arrivalTau.Seconds()
	a.at = now
	a.mu.Unlock()
}

// perSec returns the rate now.
func (a *arrivalRate) perSec(now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.decayed(now)
}

func (a *arrivalRate) decayed(now time.Time) float64 {
	if a.at.IsZero() {
		return 0
	}
	return a.rate * math.Exp(-now.Sub(a.at).Seconds()/arrivalTau.Seconds())
}

// maxSpares is the most spares an isolated server with the given Spares
// setting keeps while its spares are being used up.
func (g *Gateway) maxSpares(base int) int {
	if base <= 0 {
		return 0
	}
	return max(base, min(2*mcpool.DefaultConnectLimit(), g.opts.MaxIsolatedSessions))
}

// spareTarget is how many spares srv should have warm now: Spares while
// idle; while downstream sessions arrive, enough for those that arrive
// during one connect, within cap(srv.spares) and the room under
// MaxIsolatedSessions.
func (g *Gateway) spareTarget(srv *server, now time.Time) int {
	if cap(srv.spares) == 0 {
		return 0
	}
	mean := srv.Config.ConnectLimiter.Stats().MeanConnect
	if mean == 0 {
		mean = time.Second
	}
	want := int(math.Ceil(srv.arrivals.perSec(now) * mean.Seconds()))
	g.iso.mu.Lock()
	room := g.opts.MaxIsolatedSessions - g.iso.n
	g.iso.mu.Unlock()
	return max(srv.Spares, min(want, cap(srv.spares), room))
}

// keepSpares keeps srv's spares warm until Close (or a Reload takes srv
// out): as many as spareTarget
// says, several connects at once (the connect limiter spaces them), after
// a failure a pause that doubles up to 30s. Spares beyond the target
// (arrivals stopped) are closed one a second.
func (g *Gateway) keepSpares(srv *server) {
	pause := time.Second
	var paused time.Time // no new connect before
	warming := 0
	results := make(chan error, cap(srv.spares))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		target := g.spareTarget(srv, now)
		for now.After(paused) && len(srv.spares)+warming < target {
			warming++
			g.bg.Go(func() { results <- g.warmSpare(srv) })
		}
		select {
		case <-srv.ctx.Done():
			for ; warming > 0; warming-- {
				<-results
			}
			return
		case <-srv.refill:
		case err := <-results:
			warming--
			if err == nil {
				if pause > time.Second {
					// The warnings of the run were the first only.
					g.log.Info("isolated: a spare connected again", "server", srv.name)
				}
				pause = time.Second
				continue
			}
			if srv.ctx.Err() == nil {
				// The first failure of a run is a warning; the retries
				// that follow (one per pause, up to 30s apart, for as
				// long as the server stays down) would repeat it.
				level := slog.LevelWarn
				if pause > time.Second {
					level = slog.LevelDebug
				}
				msg := "isolated: warming a spare failed (retrying with backoff; further failures are logged at debug level until a spare connects)"
				if errors.Is(err, mcpool.ErrMisconfigured) {
					msg = "isolated: warming a spare failed, and retrying will not cure it: fix the server or its config (still retried with backoff, in case it is fixed in place; further failures are logged at debug level)"
				}
				g.log.Log(srv.ctx, level, msg, "server", srv.name, "error", err, "retry_in", pause)
				paused = time.Now().Add(pause)
				pause = min(2*pause, 30*time.Second)
			}
		case <-tick.C:
			if len(srv.spares) > target && warming == 0 {
				select {
				case p := <-srv.spares:
					g.forgetPool(p)
					g.bg.Go(func() { _ = p.Close(context.Background()) })
				default:
				}
			}
		}
	}
}

// warmSpare connects one spare and puts it with srv's spares (or closes it
// when they are full or the gateway is closing).
func (g *Gateway) warmSpare(srv *server) error {
	// Its turn in the connect queue, then the connect and its retries.
	ctx, cancel := context.WithTimeout(srv.ctx, g.opts.QueueWait+30*time.Second)
	// Spares speak the version and declare the capabilities of the last
	// client served (relay_requests.go).
	v, _ := srv.spareVersion.Load().(string)
	a, ok := srv.spareAsks.Load().(asks)
	if !ok {
		a = asksAll
	}
	warm := new(atomic.Bool)
	p, err := g.warmPool(ctx, srv, v, a, 0, nil, warm)
	cancel()
	if err != nil {
		return err
	}
	warm.Store(true) // from now on the pool serves, and reports, as any other
	if srv.ctx.Err() == nil {
		select {
		case srv.spares <- p:
			return nil
		default:
		}
	}
	g.forgetPool(p)
	_ = p.Close(context.Background())
	return nil
}

// warmingHandler logs a spare's pool while it warms: every record above
// debug level (a connect that failed, a breaker that opened, a connect
// that worked again) at debug level, since keepSpares reports a failed
// warm-up itself, once per run of failures, and the recovery; without it
// every retry's new pool would warn again. Once warm is true (the spare
// connected) the pool logs as any other, for the client that takes it.
type warmingHandler struct {
	slog.Handler
	warm *atomic.Bool
}

// Enabled implements slog.Handler.
func (h warmingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if !h.warm.Load() {
		l = min(l, slog.LevelDebug)
	}
	return h.Handler.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h warmingHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.warm.Load() && r.Level > slog.LevelDebug {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h warmingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return warmingHandler{h.Handler.WithAttrs(a), h.warm}
}

// WithGroup implements slog.Handler.
func (h warmingHandler) WithGroup(n string) slog.Handler {
	return warmingHandler{h.Handler.WithGroup(n), h.warm}
}
