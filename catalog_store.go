package mcpool

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// This file shares the catalog through a CatalogStore: a list missing from
// the local cache is read from the store before the server is asked, one
// process (holding the store's lock) fetches it for all, and list_changed
// travels to every process as an invalidation.

// storeLockTTL bounds how long one process may hold the refresh lock: a
// process that dies while fetching holds up the others no longer than this.
const storeLockTTL = 5 * time.Second

// storePoll is how often a process that finds another one refreshing a
// list reads the store for it.
const storePoll = 20 * time.Millisecond

// storeGate wraps the pool's CatalogStore with backoff: after a failure the
// store is left alone for a while (doubling up to storeBackoffMax), so that
// a Redis that is down costs the lists nothing but one failed try per
// backoff.
type storeGate struct {
	store CatalogStore
	base  string // key prefix for this pool's lists

	mu       sync.Mutex
	failures int
	retryAt  time.Time
	// pending counts invalidations of each kind still on their way to the
	// store: until they land, the stored copy may predate the change, so
	// it is not read. dirty: the last one failed to land. echo: sent ones
	// still to come back through Subscribe.
	pending map[string]int
	dirty   map[string]bool
	echo    map[string]int

	hits   atomic.Uint64 // lists served from the store
	errors atomic.Uint64 // store operations that failed
}

const (
	storeBackoffMin = 100 * time.Millisecond
	storeBackoffMax = 5 * time.Second
)

func (g *storeGate) usable() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures == 0 || time.Now().After(g.retryAt)
}

// result records the outcome of one store operation.
func (g *storeGate) result(err error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.failures = 0
		return true
	}
	g.errors.Add(1)
	g.failures++
	g.retryAt = time.Now().Add(min(storeBackoffMin<<min(g.failures-1, 16), storeBackoffMax))
	return false
}

// failing reports whether the last store operation failed.
func (g *storeGate) failing() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures > 0
}

func (g *storeGate) key(kind string) string { return g.base + ":" + kind }

// storedList is how a list is kept in the store.
type storedList[T any] struct {
	V     int  `json:"v"`
	Items []*T `json:"items"`
}

const storedVersion = 1

// load reads kind's list from the store; ok is false when it is absent,
// undecodable or the store failed.
func storeLoad[T any](ctx context.Context, g *storeGate, kind string) (items []*T, ttl time.Duration, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	data, ttl, found, err := g.store.Load(ctx, g.key(kind))
	if !g.result(err) || !found {
		return nil, 0, false
	}
	var v storedList[T]
	if json.Unmarshal(data, &v) != nil || v.V != storedVersion || v.Items == nil {
		// Not ours, or garbage: ignored, and overwritten by the next fetch.
		return nil, 0, false
	}
	return v.Items, ttl, true
}

func storeSave[T any](ctx context.Context, g *storeGate, kind string, items []*T, ttl time.Duration) {
	data, err := json.Marshal(storedList[T]{V: storedVersion, Items: items})
	if err != nil || ttl <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	g.result(g.store.Save(ctx, g.key(kind), data, ttl))
}

// sharedFetch returns c's list from the store or, failing that, from fetch
// (the server), which it then saves for the other processes. Only one
// process fetches at a time: the others wait for its result as long as it
// holds the refresh lock. ctx ends when the pool closes or every caller
// has given up.
func sharedFetch[T any](ctx context.Context, p *Pool, c *listCache[T], gen uint64, fetch func() ([]*T, error)) ([]*T, error) {
	g := p.store
	if g == nil {
		return fetch()
	}
	if g.isPending(c.kind) || !g.usable() {
		// An invalidation has not reached the store yet (the stored copy
		// may predate the change), or the store is backing off.
		return saveAfter(ctx, p, c, gen, fetch, false)
	}
	if items, ok := loadStored(ctx, p, c, gen); ok {
		return items, nil
	}
	// Take the refresh lock, or wait for the process that holds it to save
	// the list: as long as the lock lives (storeLockTTL at most), so that
	// however slow the fetch, one process makes it. A holder that fails
	// saves nothing and lets the lock go, and the next one here takes it.
	deadline := time.Now().Add(storeLockTTL)
	for {
		if !g.usable() {
			return fetch()
		}
		lctx, cancel := context.WithTimeout(ctx, storeTimeout)
		unlock, locked, err := g.store.TryLock(lctx, g.key(c.kind), storeLockTTL)
		cancel()
		if !g.result(err) {
			return fetch()
		}
		if locked {
			defer unlock()
			// The holder before may have saved the list and let the lock
			// go between this process's last read and its lock: read once
			// more, so that only a list missing from the store is fetched.
			if items, ok := loadStored(ctx, p, c, gen); ok {
				return items, nil
			}
			return saveAfter(ctx, p, c, gen, fetch, true)
		}
		if time.Now().After(deadline) {
			return fetch()
		}
		if err := sleepCtx(ctx, storePoll); err != nil {
			return nil, err
		}
		if items, ok := loadStored(ctx, p, c, gen); ok {
			return items, nil
		}
	}
}

// loadStored serves c from the store, if it holds the list.
func loadStored[T any](ctx context.Context, p *Pool, c *listCache[T], gen uint64) ([]*T, bool) {
	items, ttl, ok := storeLoad[T](ctx, p.store, c.kind)
	if !ok {
		return nil, false
	}
	p.store.hits.Add(1)
	if change := c.store(gen, items, ttl); change != nil && p.cfg.OnCatalogChange != nil {
		p.cfg.OnCatalogChange(*change)
	}
	return items, true
}

// saveAfter fetches c from the server and saves it in the store. With
// dirty invalidations of its kind pending (one that failed to reach the
// store), it publishes the invalidation first, so that the stale copy is
// gone everywhere before the new one is saved.
func saveAfter[T any](ctx context.Context, p *Pool, c *listCache[T], gen uint64, fetch func() ([]*T, error), locked bool) ([]*T, error) {
	g := p.store
	items, err := fetch()
	if err != nil || !g.usable() {
		return items, err
	}
	if g.isDirty(c.kind) {
		g.mark(c.kind, +1, true)
		ictx, cancel := context.WithTimeout(ctx, storeTimeout)
		ok := g.result(g.store.Invalidate(ictx, g.key(c.kind)))
		cancel()
		g.mark(c.kind, -1, !ok)
		if !ok {
			return items, nil
		}
		g.clean(c.kind)
	}
	if !locked || g.isPending(c.kind) {
		return items, nil
	}
	if ttl := c.remaining(); ttl > 0 && c.generation() == gen {
		// A list_changed during the fetch would make this list stale: it is
		// not saved then, as it is not cached locally.
		storeSave(ctx, g, c.kind, items, ttl)
	}
	return items, nil
}

// remaining is how long the cached list stays valid; 0 when there is none.
func (c *listCache[T]) remaining() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid {
		return 0
	}
	return time.Until(c.expires)
}

// mark counts an invalidation of kind on its way to the store (delta), and
// records whether the last one failed (dirty). A sent invalidation comes
// back to this process through Subscribe: echo counts those to ignore.
func (g *storeGate) mark(kind string, delta int, dirty bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		g.pending, g.dirty, g.echo = map[string]int{}, map[string]bool{}, map[string]int{}
	}
	g.pending[kind] += delta
	if delta > 0 {
		g.echo[kind]++
		return
	}
	if dirty {
		g.dirty[kind] = true
		g.echo[kind]-- // not published: nothing comes back
	}
}

func (g *storeGate) isPending(kind string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending[kind] > 0
}

func (g *storeGate) isDirty(kind string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dirty[kind]
}

func (g *storeGate) clean(kind string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.dirty, kind)
}

// ownEcho reports, and consumes, the return of this process's own
// invalidation of kind, which needs no second list_changed.
func (g *storeGate) ownEcho(kind string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.echo[kind] > 0 {
		g.echo[kind]--
		return true
	}
	return false
}
