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
	// it is not read.
	pending map[string]int

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

func storeSave[T any](g *storeGate, kind string, items []*T, ttl time.Duration) {
	data, err := json.Marshal(storedList[T]{V: storedVersion, Items: items})
	if err != nil || ttl <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	g.result(g.store.Save(ctx, g.key(kind), data, ttl))
}

// sharedFetch returns c's list from the store or, failing that, from fetch
// (the server), which it then saves for the other processes. Only one
// process fetches at a time: the others wait up to storeWait for its result
// before they ask the server themselves.
func sharedFetch[T any](p *Pool, c *listCache[T], fetch func() ([]*T, error)) ([]*T, error) {
	g := p.store
	if !g.usable() {
		return fetch()
	}
	gen := c.generation()
	if g.isPending(c.kind) {
		return fetch()
	}
	if items, ttl, ok := storeLoad[T](p.ctx, g, c.kind); ok {
		g.hits.Add(1)
		c.store(gen, items, ttl)
		return items, nil
	}
	// Take the refresh lock, or wait for the process that holds it to save
	// the list: as long as the lock lives (storeLockTTL at most), so that
	// however slow the fetch, one process makes it. A holder that fails
	// saves nothing and lets the lock go, and the next one here takes it.
	var unlock func()
	deadline := time.Now().Add(storeLockTTL)
	for {
		if !g.usable() {
			return fetch()
		}
		lctx, cancel := context.WithTimeout(p.ctx, storeTimeout)
		u, locked, err := g.store.TryLock(lctx, g.key(c.kind), storeLockTTL)
		cancel()
		if !g.result(err) {
			return fetch()
		}
		if locked {
			unlock = u
			break
		}
		if time.Now().After(deadline) {
			return fetch()
		}
		if sleepCtx(p.ctx, storePoll) != nil {
			return nil, ErrPoolClosed
		}
		if items, ttl, ok := storeLoad[T](p.ctx, g, c.kind); ok {
			g.hits.Add(1)
			c.store(gen, items, ttl)
			return items, nil
		}
	}
	defer unlock()
	items, err := fetch()
	if err != nil {
		return nil, err
	}
	if ttl := c.remaining(); ttl > 0 && c.generation() == gen {
		// A list_changed during the fetch would make this list stale: it is
		// not saved then, as it is not cached locally.
		storeSave(g, c.kind, items, ttl)
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

// publishInvalidation tells the other processes that kind's list changed.
func (p *Pool) publishInvalidation(kind string) {
	g := p.store
	if !g.usable() {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.bg.Add(1)
	p.mu.Unlock()
	g.setPending(kind, 1)
	// In the background: list_changed arrives on the session's own
	// goroutine, which a slow store must not hold up.
	go func() {
		defer p.bg.Done()
		defer g.setPending(kind, -1)
		ctx, cancel := context.WithTimeout(p.ctx, storeTimeout)
		defer cancel()
		g.result(g.store.Invalidate(ctx, g.key(kind)))
	}()
}

func (g *storeGate) setPending(kind string, delta int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		g.pending = map[string]int{}
	}
	g.pending[kind] += delta
}

func (g *storeGate) isPending(kind string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending[kind] > 0
}

// subscribeStore applies invalidations published by any process to this
// pool's lists, until the pool closes.
func (p *Pool) subscribeStore() {
	g := p.store
	p.bg.Go(func() {
		g.store.Subscribe(p.ctx, func(key string) {
			for _, kind := range []string{"tools", "prompts", "resources"} {
				// The empty key: invalidations may have been missed while
				// cut off from the store.
				if key == "" || key == g.key(kind) {
					p.listChanged(kind)
				}
			}
		})
	})
}
