package mcpool

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"
)

// The catalog caches what the server lists (tools, prompts, resources) for
// the whole pool: every session of a pool talks to the same server with the
// same identity, so one list serves them all. A keyed pool ([Keyed]) gives
// each identity its own pool and so its own catalog.

// CatalogChange describes how a list changed between two fetches, for
// Config.OnCatalogChange. Names are tool and prompt names, or resource URIs.
type CatalogChange struct {
	Kind    string   // "tools", "prompts" or "resources"
	Added   []string // present now, absent before
	Removed []string // present before, absent now
	Changed []string // present in both, with a different definition
}

// listCache caches one paginated list. fetch walks every page on one
// session: cursors belong to the session that issued them (MCP spec,
// "Pagination").
type listCache[T any] struct {
	kind string
	ttl  time.Duration // <0: never serve from the cache
	key  func(*T) string
	// stats are shared by the pool's caches.
	stats *catalogStats

	group singleflight.Group

	mu      sync.Mutex
	items   []*T
	byKey   map[string]*T
	expires time.Time
	valid   bool
	// gen counts invalidations. A fetch that began before the latest one
	// may hold a list from before the change, so it is not stored.
	gen uint64
	// last is the latest list fetched, kept to compute CatalogChange.
	last map[string][]byte

	// fmu guards the shared fetch's audience: a fetch that nobody waits
	// for any more is stopped rather than left to run (a server that always
	// returns a next cursor would grow it without bound).
	fmu       sync.Mutex
	waiting   int                // callers waiting on the shared fetch
	stopFetch context.CancelFunc // the running fetch's; nil when none
	fetchID   uint64
}

// join counts a caller in on the shared fetch.
func (c *listCache[T]) join() {
	c.fmu.Lock()
	c.waiting++
	c.fmu.Unlock()
}

// leave counts a caller out; the last one to give up stops the fetch, and
// the next caller starts a fresh one.
func (c *listCache[T]) leave(gaveUp bool) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.waiting--
	if gaveUp && c.waiting == 0 {
		if c.stopFetch != nil {
			c.stopFetch()
			c.stopFetch = nil
		}
		// Whoever comes next starts a fetch of its own rather than join
		// one that is stopping (or about to find nobody waiting).
		c.group.Forget(c.kind)
	}
}

// started registers a fetch's cancel func. It reports false, and the fetch
// must not run, when every caller has already given up.
func (c *listCache[T]) started(cancel context.CancelFunc) (uint64, bool) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.waiting == 0 {
		return 0, false
	}
	c.fetchID++
	c.stopFetch = cancel
	return c.fetchID, true
}

func (c *listCache[T]) finished(id uint64) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.fetchID == id {
		c.stopFetch = nil
	}
}

type catalogStats struct {
	hits, misses, invalidations atomic.Uint64
}

func (c *listCache[T]) get() ([]*T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || time.Now().After(c.expires) {
		return nil, false
	}
	return c.items, true
}

func (c *listCache[T]) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// store caches items for ttl (the shorter of the pool's TTL and the server's
// ttlMs hint) unless an invalidation came in since gen, and returns the
// change from the previous fetch (nil on the first).
func (c *listCache[T]) store(gen uint64, items []*T, serverTTL time.Duration) *CatalogChange {
	enc := make(map[string][]byte, len(items))
	byKey := make(map[string]*T, len(items))
	for _, it := range items {
		k := c.key(it)
		byKey[k] = it
		enc[k], _ = json.Marshal(it)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		// An invalidation came in during this fetch: its list may be stale,
		// and a later fetch will report the change.
		return nil
	}
	change := diff(c.kind, c.last, enc)
	c.last = enc
	if c.ttl >= 0 {
		ttl := c.ttl
		if serverTTL > 0 && serverTTL < ttl {
			ttl = serverTTL
		}
		c.items, c.byKey = items, byKey
		c.expires = time.Now().Add(ttl)
		c.valid = true
	}
	return change
}

// lastKnown returns the latest fetched definition, even if the cache has
// been invalidated since.
func (c *listCache[T]) lastKnown(key string) (*T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byKey[key]
	return t, ok
}

func (c *listCache[T]) lookup(key string) (*T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byKey[key]
	return t, ok && c.valid
}

func (c *listCache[T]) invalidate() {
	c.stats.invalidations.Add(1)
	c.mu.Lock()
	c.gen++
	c.valid = false
	c.mu.Unlock()
	// Callers arriving from now on must not join a fetch that may predate
	// the change.
	c.group.Forget(c.kind)
}

func diff(kind string, before, after map[string][]byte) *CatalogChange {
	if before == nil {
		return nil
	}
	ch := &CatalogChange{Kind: kind}
	for k, v := range after {
		if old, ok := before[k]; !ok {
			ch.Added = append(ch.Added, k)
		} else if string(old) != string(v) {
			ch.Changed = append(ch.Changed, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			ch.Removed = append(ch.Removed, k)
		}
	}
	if len(ch.Added)+len(ch.Removed)+len(ch.Changed) == 0 {
		return nil
	}
	slices.Sort(ch.Added)
	slices.Sort(ch.Removed)
	slices.Sort(ch.Changed)
	return ch
}

// cachedList serves c from the cache or from one shared fetch on the pool's
// context, so that one caller giving up does not fail the others; when the
// last one gives up, the fetch stops.
func cachedList[T any](ctx context.Context, p *Pool, c *listCache[T], page func(context.Context, *mcp.ClientSession, string) ([]*T, string, time.Duration, error)) ([]*T, error) {
	if items, ok := c.get(); ok {
		c.stats.hits.Add(1)
		return items, nil
	}
	// Counted once on the fetch: a caller counted as a miss is one the
	// fetch will not stop without.
	start := time.Now()
	c.join()
	c.stats.misses.Add(1)
	ch := c.group.DoChan(c.kind, func() (any, error) {
		// A fetch that ended between this caller's miss and now has
		// filled the cache: no second fetch for it.
		if items, ok := c.get(); ok {
			return items, nil
		}
		return fetch(p, c, page)
	})
	for {
		// A Group's attempt that another replica can take leaves as soon
		// as a connect fails with no session, as Acquire's does.
		connected, err := p.failFastWait(ctx)
		if err != nil {
			c.leave(true)
			return nil, err
		}
		select {
		case r := <-ch:
			c.leave(false)
			if r.Err != nil {
				return nil, r.Err
			}
			return r.Val.([]*T), nil
		case <-connected:
		case <-ctx.Done():
			c.leave(true)
			p.mu.Lock()
			defer p.mu.Unlock()
			if err := p.gaveUpLocked(start, ctx.Err()); err != nil {
				return nil, err // the server is not answering: say so, as Acquire does
			}
			return nil, ctx.Err()
		}
	}
}

// fetch is the shared fetch of c: from the CatalogStore when the pool has
// one and it holds the list, else from the server. It runs on the pool's
// context, tracked by Close, and stops when every caller has given up.
func fetch[T any](p *Pool, c *listCache[T], page func(context.Context, *mcp.ClientSession, string) ([]*T, string, time.Duration, error)) ([]*T, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.bg.Add(1)
	p.mu.Unlock()
	defer p.bg.Done()

	gen := c.generation()
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	id, ok := c.started(cancel)
	if !ok {
		return nil, context.Canceled // every caller gave up before it began
	}
	defer c.finished(id)
	return sharedFetch(ctx, p, c, gen, func() ([]*T, error) { return fetchFromServer(ctx, p, c, gen, page) })
}

// fetchFromServer walks every page of c's list on one session.
func fetchFromServer[T any](ctx context.Context, p *Pool, c *listCache[T], gen uint64, page func(context.Context, *mcp.ClientSession, string) ([]*T, string, time.Duration, error)) ([]*T, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout+max(p.cfg.AcquireTimeout, 0))
	defer cancel()
	var items []*T
	var ttl time.Duration
	var runaway error
	walk := func(ctx context.Context, cs *mcp.ClientSession) error {
		items, ttl, runaway = nil, 0, nil
		cursor := ""
		seen := map[string]bool{}
		for pages := 1; ; pages++ {
			got, next, pageTTL, err := page(ctx, cs, cursor)
			if err != nil {
				return err
			}
			items = append(items, got...)
			if pageTTL > 0 && (ttl == 0 || pageTTL < ttl) {
				ttl = pageTTL
			}
			if next == "" {
				return nil
			}
			// A runaway listing ends here, as a success of the session
			// (it answered well) but a failure of the fetch.
			switch {
			case seen[next]:
				runaway = &ListTooLongError{Kind: c.kind, Pages: pages, RepeatedCursor: next}
				return nil
			case pages >= p.cfg.MaxListPages:
				runaway = &ListTooLongError{Kind: c.kind, Pages: pages}
				return nil
			}
			seen[next] = true
			cursor = next
		}
	}
	// Listing is read-only: when the session dies under it, walk again on
	// another (from the first page: cursors do not move between sessions).
	o := p.do(ctx, walk)
	if o.rateLimited && p.waitRateLimit(ctx, o.err) {
		o = p.do(ctx, walk)
	}
	for attempt := 0; o.lost && attempt < p.cfg.MaxSessions && ctx.Err() == nil; attempt++ {
		o = p.do(ctx, walk)
	}
	if o.err != nil {
		return nil, o.err
	}
	if runaway != nil {
		p.log.warn("catalog fetch stopped", "error", runaway)
		return nil, runaway
	}
	items = slices.Clip(items)
	if change := c.store(gen, items, ttl); change != nil && p.cfg.OnCatalogChange != nil {
		p.cfg.OnCatalogChange(*change)
	}
	return items, nil
}

// catalog holds the pool's three caches.
type catalog struct {
	stats     catalogStats
	tools     listCache[mcp.Tool]
	prompts   listCache[mcp.Prompt]
	resources listCache[mcp.Resource]
}

func (c *catalog) init(ttl time.Duration) {
	c.tools = listCache[mcp.Tool]{kind: "tools", ttl: ttl, stats: &c.stats, key: func(t *mcp.Tool) string { return t.Name }}
	c.prompts = listCache[mcp.Prompt]{kind: "prompts", ttl: ttl, stats: &c.stats, key: func(t *mcp.Prompt) string { return t.Name }}
	c.resources = listCache[mcp.Resource]{kind: "resources", ttl: ttl, stats: &c.stats, key: func(t *mcp.Resource) string { return t.URI }}
}

func (c *catalog) invalidateAll() {
	c.tools.invalidate()
	c.prompts.invalidate()
	c.resources.invalidate()
}

func ttlOf(r mcp.CacheableResult) time.Duration {
	return time.Duration(r.GetTTLMs()) * time.Millisecond
}

// ListTools returns the server's tools, every page of them (MCP spec,
// "Tools" and "Pagination"). The list is cached for ToolCacheTTL (or the
// server's shorter ttlMs under 2026-07-28) and shared by all sessions;
// concurrent callers on a miss share one fetch, which runs on the pool's
// context so that one caller giving up does not fail the others. A
// notifications/tools/list_changed from any session, a new session that
// reports a different server name or version, or [Pool.InvalidateTools]
// empties the cache.
//
// A listing that has not ended after Config.MaxListPages pages, or whose
// server sends a cursor twice, stops with a [*ListTooLongError] (errors.Is
// ErrListTooLong). When every caller waiting on the shared fetch has given
// up, the fetch stops too.
//
// The returned slice and tools are shared: treat them as read-only.
// Errors: ErrPoolClosed, ctx's error, any Acquire error, ErrListTooLong, a
// [*RateLimitedError], or the server's. When ctx ends while the pool has no
// session and its connects are failing, the error is, as Acquire's, a
// [*ConnectError] with the last failure that also matches ctx's error.
func (p *Pool) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	return cachedList(ctx, p, &p.catalog.tools, func(ctx context.Context, cs *mcp.ClientSession, cursor string) ([]*mcp.Tool, string, time.Duration, error) {
		res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
		if err != nil {
			return nil, "", 0, err
		}
		return res.Tools, res.NextCursor, ttlOf(res), nil
	})
}

// serverCapabilities returns the capabilities the session's server
// declared, or nil when they are not known.
func serverCapabilities(cs *mcp.ClientSession) *mcp.ServerCapabilities {
	if ir := cs.InitializeResult(); ir != nil {
		return ir.Capabilities
	}
	return nil
}

// ListPrompts is ListTools for prompts, invalidated by
// notifications/prompts/list_changed. A server that did not declare the
// prompts capability is not asked (MCP: a client uses only the features
// its server declared): its list is empty.
func (p *Pool) ListPrompts(ctx context.Context) ([]*mcp.Prompt, error) {
	return cachedList(ctx, p, &p.catalog.prompts, func(ctx context.Context, cs *mcp.ClientSession, cursor string) ([]*mcp.Prompt, string, time.Duration, error) {
		if caps := serverCapabilities(cs); caps != nil && caps.Prompts == nil {
			return nil, "", 0, nil
		}
		res, err := cs.ListPrompts(ctx, &mcp.ListPromptsParams{Cursor: cursor})
		if err != nil {
			return nil, "", 0, err
		}
		return res.Prompts, res.NextCursor, ttlOf(res), nil
	})
}

// ListResources is ListTools for resources, invalidated by
// notifications/resources/list_changed. A server that did not declare the
// resources capability is not asked: its list is empty.
func (p *Pool) ListResources(ctx context.Context) ([]*mcp.Resource, error) {
	return cachedList(ctx, p, &p.catalog.resources, func(ctx context.Context, cs *mcp.ClientSession, cursor string) ([]*mcp.Resource, string, time.Duration, error) {
		if caps := serverCapabilities(cs); caps != nil && caps.Resources == nil {
			return nil, "", 0, nil
		}
		res, err := cs.ListResources(ctx, &mcp.ListResourcesParams{Cursor: cursor})
		if err != nil {
			return nil, "", 0, err
		}
		return res.Resources, res.NextCursor, ttlOf(res), nil
	})
}

// Tool returns the tool named name from the catalog (see ListTools), so
// that callers can read its annotations and schemas. It returns nil and no
// error if the server has no such tool.
func (p *Pool) Tool(ctx context.Context, name string) (*mcp.Tool, error) {
	tools, err := p.ListTools(ctx)
	if err != nil {
		return nil, err
	}
	if t, ok := p.catalog.tools.lookup(name); ok {
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
// from the server. With a CatalogStore the shared copy is invalidated too,
// in every process. It is safe to call at any time.
func (p *Pool) InvalidateTools() {
	p.catalog.tools.invalidate()
	p.publishInvalidation("tools")
}

// InvalidateCatalog empties the tool, prompt and resource caches (and,
// with a CatalogStore, their shared copies).
func (p *Pool) InvalidateCatalog() {
	p.catalog.invalidateAll()
	for _, kind := range []string{"tools", "prompts", "resources"} {
		p.publishInvalidation(kind)
	}
}

func (p *Pool) onListChanged(kind string) {
	p.log.debug("list_changed: catalog invalidated", "list", kind)
	p.listChanged(kind)
	p.publishInvalidation(kind)
}

// listChanged empties kind's cache and tells Config.OnListChanged, whether
// a session of this pool said so or, through the CatalogStore, another
// process did.
func (p *Pool) listChanged(kind string) {
	switch kind {
	case "tools":
		p.catalog.tools.invalidate()
	case "prompts":
		p.catalog.prompts.invalidate()
	case "resources":
		p.catalog.resources.invalidate()
	}
	if p.cfg.OnListChanged != nil {
		p.cfg.OnListChanged(kind)
	}
}

// publishInvalidation tells the other processes that kind's list changed.
// It is tried even while the store backs off: a change must not be lost. If
// it fails, the kind stays dirty: this process reads no stored copy of it
// and publishes again before it next saves one.
func (p *Pool) publishInvalidation(kind string) {
	g := p.store
	if g == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.bg.Add(1)
	p.mu.Unlock()
	g.mark(kind, +1, true)
	// In the background: list_changed arrives on the session's own
	// goroutine, which a slow store must not hold up.
	go func() {
		defer p.bg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, storeTimeout)
		defer cancel()
		ok := g.result(g.store.Invalidate(ctx, g.key(kind)))
		g.mark(kind, -1, !ok)
	}()
}

// subscribeStore applies invalidations published by any process to this
// pool's lists, until the pool closes.
func (p *Pool) subscribeStore() {
	g := p.store
	p.bg.Go(func() {
		g.store.Subscribe(p.ctx, func(key string) {
			for _, kind := range []string{"tools", "prompts", "resources"} {
				switch {
				case key == "":
					// Invalidations may have been missed while cut off
					// from the store.
					p.listChanged(kind)
				case key == g.key(kind) && !g.ownEcho(kind):
					p.listChanged(kind)
				}
			}
		})
	})
}
