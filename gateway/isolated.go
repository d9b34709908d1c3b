package gateway

import (
	"context"
	"errors"
	"fmt"
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
				g.relay.owners.Delete(victim)
				_ = victim.Close(context.Background())
			}()
		}

		p, err := g.connectIsolated(ctx, srv, legacyVersion(srv, ss), asksOf(ss)) // relay_requests.go
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
		g.relay.owners.Delete(p)
		_ = p.Close(context.Background())
	}
	return g.warmPool(ctx, srv, version, asks)
}

// warmPool connects a pool for one downstream session; asks is what its
// client answers (spares: everything), the capabilities the pool declares.
func (g *Gateway) warmPool(ctx context.Context, srv *server, version string, asks asks) (*mcpool.Pool, error) {
	cfg := g.isolatedConfig(srv)
	if version != "" && cfg.ProtocolVersion == "" {
		cfg.ProtocolVersion = version
	}
	owner := &isoOwner{}
	g.relayConfig(srv, &cfg, owner) // relay_requests.go
	cfg.ClientHandlers = asks.restrict(cfg.ClientHandlers)
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
		g.relay.owners.Delete(e.p)
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

// keepSpares keeps srv's spares warm until Close: one connect at a time,
// after a failure a pause that doubles up to 30s.
func (g *Gateway) keepSpares(srv *server) {
	pause := time.Second
	for {
		for len(srv.spares) < cap(srv.spares) {
			ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
			v, _ := srv.spareVersion.Load().(string)
			a, ok := srv.spareAsks.Load().(asks)
			if !ok {
				a = asksAll
			}
			p, err := g.warmPool(ctx, srv, v, a)
			cancel()
			if err != nil {
				if g.ctx.Err() != nil {
					return
				}
				g.log.Warn("isolated: warming a spare failed", "server", srv.name, "error", err, "retry_in", pause)
				select {
				case <-g.ctx.Done():
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, 30*time.Second)
				continue
			}
			pause = time.Second
			select {
			case srv.spares <- p:
			default:
				g.relay.owners.Delete(p)
				_ = p.Close(context.Background())
			}
		}
		select {
		case <-g.ctx.Done():
			return
		case <-srv.refill:
		}
	}
}
