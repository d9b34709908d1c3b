package gateway

import (
	"context"
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

// relayStore is the catalog store the servers share, or nil.
func (g *Gateway) relayStore() mcpool.CatalogStore {
	for _, srv := range g.servers {
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
