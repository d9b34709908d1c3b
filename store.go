package mcpool

import (
	"context"
	"time"
)

// CatalogStore shares catalog lists (tools, prompts, resources) between
// processes that pool sessions to the same server, such as several gateway
// replicas behind one load balancer: one of them fetches an expired list from
// the server and the others read it from the store, and a list_changed seen
// by one reaches them all. Without a store each process fetches and caches
// on its own. The redisstore subpackage implements it on Redis.
//
// Keys are made by the pool from Config.CatalogKey, the list's kind, and,
// for lists that must not cross authorization contexts, a SHA-256 digest of
// the identity (never a token). Values are the pool's own encoding; a value
// the pool cannot decode is ignored and overwritten.
//
// The store is an optimisation, never a dependency: every method is called
// with a short deadline, and an error makes the pool fall back to its local
// cache and the server (counted in Stats.StoreErrors). Implementations must
// be safe for concurrent use.
type CatalogStore interface {
	// Load returns the value stored under key and the time left before it
	// expires, or ok false when there is none.
	Load(ctx context.Context, key string) (value []byte, ttl time.Duration, ok bool, err error)
	// Save stores value under key for ttl.
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// TryLock takes a short lock named key for at most ttl, so that one
	// process refreshes an expired list while the others wait for it. It
	// reports false, with no error, when another process holds the lock.
	// unlock releases it if it is still this process's.
	TryLock(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error)
	// Invalidate deletes key and tells every subscriber, this process's
	// included, that it changed.
	Invalidate(ctx context.Context, key string) error
	// Subscribe calls fn with every key invalidated by any process until
	// ctx ends, reconnecting as needed, and with the empty key when
	// invalidations may have been missed (after a reconnect), which makes
	// the pool drop what it took from the store. It returns when ctx ends.
	Subscribe(ctx context.Context, fn func(key string))
}

// storeTimeout bounds one store operation: a slow store must cost a list
// no more than this before the pool falls back to the server.
const storeTimeout = 250 * time.Millisecond
