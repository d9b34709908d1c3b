package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	closed   bool
	closing  sync.WaitGroup
}

type isoSession struct {
	mu    sync.Mutex
	pools map[*server]*mcpool.Pool
}

// isolatedConfig is srv's template for one downstream session's pool.
func (g *Gateway) isolatedConfig(srv *server) mcpool.Config {
	cfg := srv.Config
	cfg.MinSessions, cfg.MaxSessions = 1, 1
	cfg.MaxIdleTime = -1
	cfg.OnProgress = g.OnProgress
	// A session's own list_changed (a stateful server's per-session tools)
	// is that session's business: it must not invalidate the catalog shared
	// with other replicas, nor the merged lists, which come from Upstream.
	cfg.CatalogStore, cfg.CatalogKey, cfg.OnListChanged = nil, "", nil
	return cfg
}

// isolatedPool returns ss's own pool for srv, taking a spare or, when none
// is ready, connecting one on the caller's time.
func (g *Gateway) isolatedPool(ctx context.Context, srv *server, ss *mcp.ServerSession) (*mcpool.Pool, error) {
	if ss == nil {
		return nil, errors.New("gateway: isolated server called outside a session")
	}
	g.iso.mu.Lock()
	if g.iso.closed {
		g.iso.mu.Unlock()
		return nil, mcpool.ErrPoolClosed
	}
	is := g.iso.sessions[ss]
	if is == nil {
		is = &isoSession{pools: map[*server]*mcpool.Pool{}}
		g.iso.sessions[ss] = is
		g.iso.closing.Add(1)
		go g.releaseWhenDone(ss, is)
	}
	g.iso.mu.Unlock()

	// One pool per server per session, even when the session's first calls
	// arrive together.
	is.mu.Lock()
	defer is.mu.Unlock()
	if p := is.pools[srv]; p != nil {
		return p, nil
	}
	var p *mcpool.Pool
	select {
	case p = <-srv.spares:
	default:
	}
	select {
	case srv.refill <- struct{}{}:
	default:
	}
	if p == nil {
		var err error
		if p, err = g.warmPool(ctx, srv); err != nil {
			return nil, err
		}
	}
	is.pools[srv] = p
	return p, nil
}

func (g *Gateway) warmPool(ctx context.Context, srv *server) (*mcpool.Pool, error) {
	p, err := mcpool.New(g.isolatedConfig(srv))
	if err != nil {
		return nil, fmt.Errorf("gateway: server %s: %w", srv.name, err)
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Close(context.Background())
		return nil, err
	}
	return p, nil
}

// releaseWhenDone closes is's pools when ss ends.
func (g *Gateway) releaseWhenDone(ss *mcp.ServerSession, is *isoSession) {
	defer g.iso.closing.Done()
	_ = ss.Wait()
	g.iso.mu.Lock()
	delete(g.iso.sessions, ss)
	g.iso.mu.Unlock()
	is.mu.Lock()
	pools := is.pools
	is.pools = map[*server]*mcpool.Pool{}
	is.mu.Unlock()
	for srv, p := range pools {
		if err := p.Close(context.Background()); err != nil {
			g.log.Debug("isolated: closing a session's pool", "server", srv.name, "error", err)
		}
	}
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
			p, err := g.warmPool(ctx, srv)
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
