package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
)

// Replicas relay list_changed to each other through the servers' catalog
// store (Redis, with the command's --redis), so that a session hears of a
// change wherever its GET stream is, even from a replica that alone heard
// it. Shared and isolated servers need no relay: their pools' catalogs
// share the store, whose invalidations reach every replica's pools. A
// passthrough server's change is heard only by the replicas holding that
// caller's upstream session: those publish it, and every replica tells its
// own downstream sessions.

// relayPrefix names the store keys the relay publishes: relayPrefix KIND
// ":" REPLICA. Nothing is stored under them.
const relayPrefix = "gateway:list_changed:"

// relayStore is the catalog store the servers' pools share (the first
// Server.Config.CatalogStore set, as the command sets them all), or nil.
func (g *Gateway) relayStore() mcpool.CatalogStore {
	for _, srv := range g.set.Load().servers {
		if srv.Config.CatalogStore != nil {
			return srv.Config.CatalogStore
		}
	}
	return nil
}

// replicaID names this gateway in relayed events (its own come back to
// it): the host, the process and the gateway in it.
func (g *Gateway) replicaID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%p", host, os.Getpid(), g)
}

// passthroughChanged tells this replica's downstream sessions that a
// passthrough server's list of kind changed, and the other replicas
// through the store.
func (g *Gateway) passthroughChanged(kind string) {
	g.notifyChanged(kindMask(kind))
	store := g.relayStore()
	if store == nil || g.ctx.Err() != nil {
		return
	}
	go func() { // bounded by the timeout, and by Close
		ctx, cancel := context.WithTimeout(g.ctx, time.Second)
		defer cancel()
		if err := store.Invalidate(ctx, relayPrefix+kind+":"+g.replicaID()); err != nil && g.ctx.Err() == nil {
			g.log.Debug("relaying list_changed to the other replicas failed", "kind", kind, "error", err)
		}
	}()
}

// relayListChanged tells this replica's downstream sessions of the
// list_changed other replicas publish, until Close.
func (g *Gateway) relayListChanged() {
	store := g.relayStore()
	if store == nil {
		return
	}
	self := g.replicaID()
	store.Subscribe(g.ctx, func(key string) {
		if key == "" {
			// Events may have been missed: clients list again.
			g.notifyChanged([3]bool{true, true, true})
			return
		}
		if digest, ok := strings.CutPrefix(key, closingPrefix); ok {
			if g.port != nil {
				g.port.closeDeleted(digest)
			}
			return
		}
		if rest, ok := strings.CutPrefix(key, levelPrefix); ok {
			if g.port != nil {
				go g.port.levelRelayed(rest, self) // loglevel.go
			}
			return
		}
		rest, ok := strings.CutPrefix(key, relayPrefix)
		if !ok {
			return
		}
		kind, from, _ := strings.Cut(rest, ":")
		if from != self {
			g.notifyChanged(kindMask(kind))
		}
	})
}

// Deleted sessions. A DELETE ends a session on the replica that takes it;
// the id stays valid until its expiry, so the replica remembers it (and,
// with a store, every replica learns of it: the copies they adopted close,
// and an adoption first asks the store), and the id then gets 404.

const (
	closedPrefix  = "gateway:session_closed:" // stored until the id's expiry
	closingPrefix = "gateway:session_close:"  // published when one is deleted
)

// idDigest names a session id in the store's keys without revealing it.
func idDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// deleted records that the session of id (expiring at expiry, unix
// seconds) was deleted, here and in the store.
func (p *portable) deleted(id string, expiry int64) {
	digest := idDigest(id)
	now := p.codec.now().Unix()
	p.mu.Lock()
	p.closed[digest] = expiry
	if len(p.closed)%1024 == 0 {
		for d, exp := range p.closed {
			if exp <= now {
				delete(p.closed, d)
			}
		}
	}
	p.mu.Unlock()
	store := p.g.relayStore()
	if store == nil || p.g.ctx.Err() != nil {
		return
	}
	go func() { // bounded by the timeout, and by Close
		ctx, cancel := context.WithTimeout(p.g.ctx, time.Second)
		defer cancel()
		err := store.Save(ctx, closedPrefix+digest, []byte{1}, time.Duration(expiry-now)*time.Second)
		if err == nil {
			err = store.Invalidate(ctx, closingPrefix+digest)
		}
		if err != nil && p.g.ctx.Err() == nil {
			p.g.log.Debug("recording a deleted session in the store failed: other replicas keep their copies until they idle out", "error", err)
		}
	}()
}

// wasDeleted reports whether the session of id was deleted, on this replica
// or, with a store, on any. A store that does not answer in time counts as
// not deleted: sessions keep working while Redis is away.
func (p *portable) wasDeleted(ctx context.Context, id string) bool {
	digest := idDigest(id)
	p.mu.Lock()
	_, gone := p.closed[digest]
	p.mu.Unlock()
	if gone {
		return true
	}
	store := p.g.relayStore()
	if store == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	_, _, ok, err := store.Load(ctx, closedPrefix+digest)
	return ok && err == nil
}

// closeDeleted closes this replica's copy of a session another replica
// deleted.
func (p *portable) closeDeleted(digest string) {
	p.mu.Lock()
	var victim *portableSession
	for _, e := range p.sessions {
		if e.digest == digest {
			victim = e
			break
		}
	}
	if victim != nil {
		p.closed[digest] = victim.expiry
	}
	p.mu.Unlock()
	if victim != nil {
		<-victim.ready
		if victim.ss != nil {
			_ = victim.ss.Close()
		}
	}
}
