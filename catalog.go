package mcpool

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"
)

// toolCatalog caches the server's tool list for the whole pool. Every
// session of a pool talks to the same server, so one list serves them all.
type toolCatalog struct {
	ttl   time.Duration // <0: never serve from the cache
	group singleflight.Group

	mu      sync.Mutex
	tools   []*mcp.Tool
	byName  map[string]*mcp.Tool
	expires time.Time
	valid   bool
	// gen counts invalidations. A fetch that began before the latest one
	// may hold a list from before the change, so it is not stored.
	gen uint64

	hits, misses, invalidations atomic.Uint64
}

func (c *toolCatalog) init(ttl time.Duration) { c.ttl = ttl }

func (c *toolCatalog) get() ([]*mcp.Tool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || time.Now().After(c.expires) {
		return nil, false
	}
	return c.tools, true
}

func (c *toolCatalog) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *toolCatalog) store(gen uint64, tools []*mcp.Tool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.ttl < 0 {
		return
	}
	c.tools = tools
	c.byName = make(map[string]*mcp.Tool, len(tools))
	for _, t := range tools {
		c.byName[t.Name] = t
	}
	c.expires = time.Now().Add(c.ttl)
	c.valid = true
}

func (c *toolCatalog) invalidate() {
	c.invalidations.Add(1)
	c.mu.Lock()
	c.gen++
	c.valid = false
	c.mu.Unlock()
	// Callers arriving from now on must not join a fetch that may predate
	// the change.
	c.group.Forget(toolsKey)
}

const toolsKey = "tools/list"

// ListTools returns the server's tools, every page of them (MCP spec,
// "Tools" and "Pagination"). The list is cached for ToolCacheTTL and shared
// by all sessions; concurrent callers on a miss share one fetch, which runs
// on the pool's context so that one caller giving up does not fail the
// others. A notifications/tools/list_changed from any session, or
// [Pool.InvalidateTools], empties the cache.
//
// The returned slice and tools are shared: treat them as read-only.
// Errors: ErrPoolClosed, ctx's error, any Acquire error, or the server's.
func (p *Pool) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	if tools, ok := p.catalog.get(); ok {
		p.catalog.hits.Add(1)
		return tools, nil
	}
	p.catalog.misses.Add(1)
	ch := p.catalog.group.DoChan(toolsKey, func() (any, error) { return p.fetchTools() })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]*mcp.Tool), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Tool returns the tool named name from the catalog (see ListTools), so
// that callers can read its annotations and schemas. It returns nil and no
// error if the server has no such tool.
func (p *Pool) Tool(ctx context.Context, name string) (*mcp.Tool, error) {
	tools, err := p.ListTools(ctx)
	if err != nil {
		return nil, err
	}
	p.catalog.mu.Lock()
	t, ok := p.catalog.byName[name]
	p.catalog.mu.Unlock()
	if ok {
		return t, nil
	}
	// The cache may be disabled or already invalidated again.
	for _, t := range tools {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, nil
}

// InvalidateTools empties the tool catalog cache: the next ListTools fetches
// from the server. It is safe to call at any time.
func (p *Pool) InvalidateTools() { p.catalog.invalidate() }

func (p *Pool) onToolsChanged() {
	p.log.debug("tools/list_changed: tool catalog invalidated")
	p.catalog.invalidate()
}

func (p *Pool) fetchTools() ([]*mcp.Tool, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.bg.Add(1)
	p.mu.Unlock()
	defer p.bg.Done()

	gen := p.catalog.generation()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout+max(p.cfg.AcquireTimeout, 0))
	defer cancel()
	l, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	// Cursors belong to the session that issued them (MCP spec,
	// "Pagination"), so every page comes from the one leased session.
	var tools []*mcp.Tool
	params := &mcp.ListToolsParams{}
	for {
		res, err := l.s.cs.ListTools(ctx, params)
		if err != nil {
			p.counters.errors.Add(1)
			return nil, err
		}
		tools = append(tools, res.Tools...)
		if res.NextCursor == "" {
			break
		}
		params = &mcp.ListToolsParams{Cursor: res.NextCursor}
	}
	tools = slices.Clip(tools)
	p.catalog.store(gen, tools)
	return tools, nil
}
