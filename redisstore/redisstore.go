// Package redisstore shares mcpool's tool, prompt and resource catalogs
// between processes through Redis: several gateway replicas (or any
// processes that pool sessions to the same servers) fetch each list once per
// TTL between them, and a list_changed seen by one is applied by all.
//
// Plug a [Store] into [mcpool.Config].CatalogStore. Redis is an
// optimisation, never a dependency: every operation is bounded by a short
// deadline by the pool, and when Redis is down or slow the pool serves from
// its local cache and the server, and tries Redis again after a backoff.
// Values that are not the pool's (another type under the key, garbage) are
// ignored and overwritten, never served.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultChannel is the pub/sub channel invalidations travel on.
const DefaultChannel = "mcpool:catalog:invalidate"

// Options configure a [Store]. Exactly one of URL and Client is required.
type Options struct {
	// URL is a Redis URL, e.g. "redis://127.0.0.1:6379/0" (see
	// redis.ParseURL for the form). The store owns the client it makes and
	// closes it on Close.
	URL string
	// Client is a client you made; the store never closes it. Set its
	// ContextTimeoutEnabled, or a stalled Redis holds each operation for the
	// client's ReadTimeout instead of the pool's short deadline.
	Client redis.UniversalClient
	// Prefix is put before every key, so that several deployments can share
	// one Redis. Zero means "mcpool:".
	Prefix string
	// Channel is the pub/sub channel for invalidations. Zero means
	// DefaultChannel.
	Channel string
}

// Store is an [mcpool.CatalogStore] on Redis. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	owned   bool
	prefix  string
	channel string

	mu      sync.Mutex
	subs    map[uint64]func(string)
	nextSub uint64
	stopSub context.CancelFunc // ends the one subscription; nil when none
	subDone chan struct{}
}

// New returns a store. It does no I/O: a Redis that is down at start is
// handled like one that goes down later.
func New(opts Options) (*Store, error) {
	s := &Store{rdb: opts.Client, prefix: opts.Prefix, channel: opts.Channel}
	switch {
	case opts.URL != "" && opts.Client != nil:
		return nil, errors.New("redisstore: set URL or Client, not both")
	case opts.URL != "":
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			// ParseURL's message may quote a password from the URL.
			return nil, errors.New("redisstore: URL is not a valid redis:// or rediss:// URL")
		}
		// The pool bounds every operation and falls back on failure: the
		// client's own retries would only spend that budget.
		o.MaxRetries = -1
		o.DialTimeout = 500 * time.Millisecond
		// The pool's deadlines (a few hundred milliseconds) bound every
		// operation: without this go-redis would wait out ReadTimeout (3s)
		// on a Redis that stalls.
		o.ContextTimeoutEnabled = true
		o.ReadTimeout, o.WriteTimeout = time.Second, time.Second
		s.rdb, s.owned = redis.NewClient(o), true
	case opts.Client == nil:
		return nil, errors.New("redisstore: set URL or Client")
	}
	if s.prefix == "" {
		s.prefix = "mcpool:"
	}
	if s.channel == "" {
		s.channel = DefaultChannel
	}
	return s, nil
}

// Close closes the client the store made from Options.URL.
func (s *Store) Close() error {
	if s.owned {
		return s.rdb.Close()
	}
	return nil
}

// Load implements [mcpool.CatalogStore]: GET and PTTL in one round trip. A
// key holding another type than a string reads as absent.
func (s *Store) Load(ctx context.Context, key string) ([]byte, time.Duration, bool, error) {
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.prefix+key)
		ttl = p.PTTL(ctx, s.prefix+key)
		return nil
	})
	if errors.Is(err, redis.Nil) || isWrongType(err) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("redisstore: load: %w", err)
	}
	v, _ := get.Bytes()
	d := ttl.Val()
	if d <= 0 {
		// No expiry (someone else's key) or just expired: not ours to serve.
		return nil, 0, false, nil
	}
	return v, d, true, nil
}

func isWrongType(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && len(rerr.Error()) >= 9 && rerr.Error()[:9] == "WRONGTYPE"
}

// Save implements [mcpool.CatalogStore]: SET with an expiry, replacing
// whatever the key held.
func (s *Store) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.prefix+key, value, max(ttl, time.Millisecond)).Err(); err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	return nil
}

// unlockScript deletes the lock only if it still holds this holder's token:
// a lock that expired and was taken by another process is left alone.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// TryLock implements [mcpool.CatalogStore] with SET NX PX and a random
// token.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	name := s.prefix + "lock:" + key
	ok, err := s.rdb.SetNX(ctx, name, token, max(ttl, time.Millisecond)).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redisstore: lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	unlock := func() {
		// Best effort: the lock expires on its own anyway.
		uctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		_ = unlockScript.Run(uctx, s.rdb, []string{name}, token).Err()
	}
	return unlock, true, nil
}

// Invalidate implements [mcpool.CatalogStore]: DEL, then PUBLISH the key.
func (s *Store) Invalidate(ctx context.Context, key string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.prefix+key)
		p.Publish(ctx, s.channel, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: invalidate: %w", err)
	}
	return nil
}

// Subscribe implements [mcpool.CatalogStore]. However many pools subscribe,
// the store holds one Redis subscription and fans invalidations out to
// them. The client's pub/sub reconnects by itself when Redis comes back;
// invalidations published while this process was cut off are lost, so
// every subscription after the first is reported with the empty key.
func (s *Store) Subscribe(ctx context.Context, fn func(key string)) {
	s.mu.Lock()
	s.nextSub++
	id := s.nextSub
	if s.subs == nil {
		s.subs = map[uint64]func(string){}
	}
	s.subs[id] = fn
	if s.stopSub == nil {
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		s.stopSub, s.subDone = cancel, done
		go func() {
			defer close(done)
			s.listen(sctx)
		}()
	}
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	delete(s.subs, id)
	var stop context.CancelFunc
	var done chan struct{}
	if len(s.subs) == 0 {
		stop, done = s.stopSub, s.subDone
		s.stopSub, s.subDone = nil, nil
	}
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// listen holds the store's one subscription until ctx ends.
func (s *Store) listen(ctx context.Context) {
	ps := s.rdb.Subscribe(ctx, s.channel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	subscribed := false
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					if subscribed {
						s.fanOut("")
					}
					subscribed = true
				}
			case *redis.Message:
				s.fanOut(m.Payload)
			}
		}
	}
}

func (s *Store) fanOut(key string) {
	s.mu.Lock()
	fns := make([]func(string), 0, len(s.subs))
	for _, fn := range s.subs {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(key)
	}
}
