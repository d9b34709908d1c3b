package mcpool

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Keyed is a pool partitioned by identity, for multi-tenant
// agents: each identity (a string of the caller's choosing, such as a user
// or tenant id) gets its own [Pool], so sessions, the tool catalog and
// everything cached from them are never shared with another identity.
// Gateways that shared upstream sessions across users leaked state between
// them, and caches keyed globally showed one user another's tools (IBM
// mcp-context-forge #2055, #4205).
//
// Identities are kept only as SHA-256 digests: they never appear in logs,
// errors or Stats. An identity is never derived from headers or tokens, so
// anonymous callers and callers sharing a key are not collapsed together
// unless the caller names them the same.
//
// All methods are safe for concurrent use.
type Keyed struct {
	cfg KeyedConfig

	mu     sync.Mutex
	parts  map[[sha256.Size]byte]*partition
	lru    list.List // of *partition, most recently used at the front
	closed bool

	// closing holds the pools evicted (or, once Close has begun, every
	// pool) whose teardown may still run, so that Close can wait for them
	// within its own ctx. Evicted pools whose teardown has finished are
	// dropped from it at the next eviction.
	closing map[*Pool]struct{}
	evicted atomic.Uint64
	refused atomic.Uint64

	observers []Observer // attached by Observe, guarded by mu (keyed_observe.go)
}

// KeyedConfig configures a [Keyed] pool.
type KeyedConfig struct {
	// Config is the template for every identity's pool. It is validated by
	// NewKeyed.
	Config Config
	// ForIdentity, if set, adjusts a copy of Config for one identity before
	// its pool is made: its Token or BearerToken, Headers, or Command.Env
	// for a stdio server. It must not keep cfg. An error fails the call that
	// needed the pool.
	ForIdentity func(identity string, cfg *Config) error
	// MaxIdentities caps the identities that have a pool. When a new
	// identity needs one at the cap, the least recently used identity with
	// no call in flight is closed; if every one is busy, the call fails with
	// ErrTooManyIdentities. Zero means 1024.
	MaxIdentities int
}

// ErrTooManyIdentities means a Keyed pool is at MaxIdentities and every
// identity has calls in flight.
var ErrTooManyIdentities = errors.New("mcpool: too many identities: every identity's pool is busy; raise KeyedConfig.MaxIdentities")

type partition struct {
	key   [sha256.Size]byte
	pool  *Pool
	users int // callers between get and put: not evictable
	elem  *list.Element
}

// NewKeyed validates cfg and returns an empty keyed pool; identities' pools
// are made on first use.
func NewKeyed(cfg KeyedConfig) (*Keyed, error) {
	if _, err := cfg.Config.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxIdentities < 0 {
		return nil, configErr("MaxIdentities", "is negative")
	}
	if cfg.MaxIdentities == 0 {
		cfg.MaxIdentities = 1024
	}
	return &Keyed{cfg: cfg, parts: map[[sha256.Size]byte]*partition{}, closing: map[*Pool]struct{}{}}, nil
}

// get returns identity's partition, made if need be, held until put.
func (k *Keyed) get(identity string) (*partition, error) {
	key := sha256.Sum256([]byte(identity))
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ErrPoolClosed
	}
	if p, ok := k.parts[key]; ok {
		p.users++
		k.lru.MoveToFront(p.elem)
		return p, nil
	}
	k.mu.Unlock()
	// ForIdentity may look a token up: make the pool without the lock, so
	// that one slow identity does not hold up the others.
	pool, err := k.newPool(identity)
	k.mu.Lock()
	if err != nil {
		return nil, err
	}
	// A pool not yet used has no session: closing it does no I/O, so it
	// may be closed here, under the lock.
	if k.closed {
		_ = pool.Close(context.Background())
		return nil, ErrPoolClosed
	}
	if p, ok := k.parts[key]; ok {
		// Another caller made this identity's pool meanwhile: use theirs.
		_ = pool.Close(context.Background())
		p.users++
		k.lru.MoveToFront(p.elem)
		return p, nil
	}
	if len(k.parts) >= k.cfg.MaxIdentities && !k.evictLocked() {
		k.refused.Add(1)
		_ = pool.Close(context.Background())
		return nil, ErrTooManyIdentities
	}
	p := &partition{key: key, pool: pool, users: 1}
	p.elem = k.lru.PushFront(p)
	k.parts[key] = p
	k.observeLocked(pool) // keyed_observe.go
	return p, nil
}

// newPool makes identity's pool from a deep copy of the template, so that
// ForIdentity's changes (a header, an env entry) never reach the template
// and so another identity.
func (k *Keyed) newPool(identity string) (*Pool, error) {
	cfg := k.cfg.Config
	cfg.Headers = cfg.Headers.Clone()
	if cfg.Command != nil {
		c := *cfg.Command
		c.Args = slices.Clone(c.Args)
		c.Env = slices.Clone(c.Env)
		cfg.Command = &c
	}
	if cfg.CatalogStore != nil {
		// Lists fetched with this identity's credentials are stored under
		// its digest only: never served to another identity.
		base := cfg.CatalogKey
		if base == "" {
			base = redactURL(cfg.URL + cfg.SSEURL)
		}
		sum := sha256.Sum256([]byte(identity))
		cfg.CatalogKey = base + ":id:" + hex.EncodeToString(sum[:])
	}
	if k.cfg.ForIdentity != nil {
		if err := k.cfg.ForIdentity(identity, &cfg); err != nil {
			// The identity may be a credential: the error must not name it.
			return nil, &forIdentityError{cause: err}
		}
	}
	return New(cfg)
}

func (k *Keyed) put(p *partition) {
	k.mu.Lock()
	p.users--
	k.mu.Unlock()
}

// evictLocked closes the least recently used idle partition, in the
// background, and reports whether there was one.
func (k *Keyed) evictLocked() bool {
	for e := k.lru.Back(); e != nil; e = e.Prev() {
		p := e.Value.(*partition)
		if p.users > 0 || p.pool.busy() {
			continue
		}
		k.lru.Remove(e)
		delete(k.parts, p.key)
		k.evicted.Add(1)
		for q := range k.closing {
			if q.closeFinished() {
				delete(k.closing, q)
			}
		}
		k.closing[p.pool] = struct{}{}
		// Close with an ended ctx starts the teardown in the background
		// and returns at once (no I/O under k.mu); Keyed.Close waits for
		// it within its own ctx. The pool is idle: nothing to drain.
		_ = p.pool.Close(endedCtx)
		return true
	}
	return false
}

// endedCtx is a context that has ended: Pool.Close under it starts the
// teardown and returns without waiting.
var endedCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// With runs fn with identity's pool, which is not evicted while fn runs.
// fn must not keep the pool. Errors: ErrPoolClosed, ErrTooManyIdentities,
// ForIdentity's or New's error (a bad per-identity Config), or fn's.
func (k *Keyed) With(ctx context.Context, identity string, fn func(ctx context.Context, p *Pool) error) error {
	part, err := k.get(identity)
	if err != nil {
		return err
	}
	defer k.put(part)
	return fn(ctx, part.pool)
}

// CallTool is [Pool.CallTool] on identity's pool.
func (k *Keyed) CallTool(ctx context.Context, identity string, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var res *mcp.CallToolResult
	err := k.With(ctx, identity, func(ctx context.Context, p *Pool) error {
		var err error
		res, err = p.CallTool(ctx, params)
		return err
	})
	return res, err
}

// ListTools is [Pool.ListTools] on identity's pool: the catalog is the
// identity's own.
func (k *Keyed) ListTools(ctx context.Context, identity string) ([]*mcp.Tool, error) {
	var tools []*mcp.Tool
	err := k.With(ctx, identity, func(ctx context.Context, p *Pool) error {
		var err error
		tools, err = p.ListTools(ctx)
		return err
	})
	return tools, err
}

// KeyedStats is a snapshot of a [Keyed] pool. It names no identity.
type KeyedStats struct {
	Identities int    // identities with a pool now
	Evicted    uint64 // identities' pools closed to make room
	Refused    uint64 // calls refused with ErrTooManyIdentities
	// Sessions, CallsInFlight and Waiters are summed over every identity.
	Sessions      int
	CallsInFlight int
	Waiters       int
}

// Stats returns a snapshot. It costs one short lock per identity.
func (k *Keyed) Stats() KeyedStats {
	k.mu.Lock()
	pools := make([]*Pool, 0, len(k.parts))
	for _, p := range k.parts {
		pools = append(pools, p.pool)
	}
	k.mu.Unlock()
	st := KeyedStats{Identities: len(pools), Evicted: k.evicted.Load(), Refused: k.refused.Load()}
	for _, p := range pools {
		ps := p.Stats()
		st.Sessions += ps.Sessions
		st.CallsInFlight += ps.CallsInFlight
		st.Waiters += ps.Waiters
	}
	return st
}

// Close closes every identity's pool concurrently, as [Pool.Close] does,
// with the pools evicted earlier whose teardown may still run, and returns
// their errors joined. It returns by ctx's deadline: when a teardown has
// not finished by then, the error matches ErrCloseIncomplete and ctx's
// error, and the teardown goes on in the background. Close is idempotent
// and safe from many goroutines: every call waits, as long as its own ctx
// allows, for the same teardown; to wait for one that an earlier Close
// left running, call Close again with a longer ctx. Calls after the first
// Close begins fail with ErrPoolClosed.
func (k *Keyed) Close(ctx context.Context) error {
	k.mu.Lock()
	k.closed = true
	for _, p := range k.parts {
		k.closing[p.pool] = struct{}{}
	}
	k.parts = nil
	k.lru.Init()
	pools := make([]*Pool, 0, len(k.closing))
	for p := range k.closing {
		pools = append(pools, p)
	}
	k.mu.Unlock()
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() { errs[i] = p.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forIdentityError is ForIdentity's error, said with one "mcpool: ".
type forIdentityError struct{ cause error }

// Error names ForIdentity and its error; never the identity.
func (e *forIdentityError) Error() string { return "mcpool: ForIdentity: " + unprefixed(e.cause) }

// Unwrap returns ForIdentity's error.
func (e *forIdentityError) Unwrap() error { return e.cause }
