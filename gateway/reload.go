package gateway

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Reload: the gateway's servers are a serverSet, replaced whole, so that a
// call routes on one snapshot. A call counts itself on the server it routed
// to (server.calls.Enter, in Gateway.enter) and finishes there; a server taken
// out of the set drains those calls before its pools are closed.

// serverSet is the gateway's servers, in catalog order, and their naming.
type serverSet struct {
	servers []*server
	byName  map[string]*server
	naming  *mcpool.Naming
}

// newServerSet makes the set of servers named by naming, reusing the
// servers of old (which may be nil) whose Server is the same. It returns
// the set and the servers it made; on error it closes those and returns
// none.
func (g *Gateway) newServerSet(servers []Server, naming *mcpool.Naming, old *serverSet) (*serverSet, []*server, error) {
	if len(servers) == 0 {
		return nil, nil, errors.New("gateway: no servers configured")
	}
	set := &serverSet{byName: map[string]*server{}, naming: naming}
	var fresh []*server
	fail := func(err error) (*serverSet, []*server, error) {
		for _, srv := range fresh {
			_ = srv.close(context.Background()) // never started: no I/O
		}
		return nil, nil, err
	}
	for _, s := range servers {
		if s.Name == "" {
			return fail(errors.New("gateway: a server has no name"))
		}
		if _, dup := set.byName[s.Name]; dup {
			return fail(fmt.Errorf("gateway: server %q configured twice", s.Name))
		}
		if _, ok := naming.Name(s.Name, ""); !ok {
			return fail(fmt.Errorf("gateway: server %q is not one of Options.Naming's servers %q: make the Naming from a GroupConfig with every server", s.Name, naming.Servers()))
		}
		var srv *server
		if old != nil {
			if o := old.byName[s.Name]; o != nil && sameServer(o.orig, s) && sameNames(o.naming, naming, s.Name) {
				srv = o
			}
		}
		if srv == nil {
			var err error
			if srv, err = g.newServer(s, naming); err != nil {
				return fail(err)
			}
			fresh = append(fresh, srv)
		}
		set.servers = append(set.servers, srv)
		set.byName[s.Name] = srv
	}
	return set, fresh, nil
}

// startServers loads servers' catalogs and starts their spares' upkeep. It
// waits for each server until its catalog is loaded or it is failing (every
// replica without a session, its last connect failed: mcpool.Stats.Failing):
// a server that is down (its connects refused until its circuit breaker
// opens, 10 s by default) must not hold back the others'. Its catalog goes
// on loading in the background, and comes with list_changed when it
// answers.
func (g *Gateway) startServers(ctx context.Context, servers []*server) error {
	type loading struct {
		srv  *server
		done chan struct{}
	}
	var loads []loading
	for _, srv := range servers {
		if srv.Mode != ModePassthrough {
			l := loading{srv: srv, done: make(chan struct{})}
			srv.refreshing.Store(true) // a new server: nothing else loads it
			if !g.goBackground(func() {
				g.refreshCatalog(srv.ctx, srv, true)
				close(l.done)
				g.refreshLoop(srv) // what the watcher asked for meanwhile
			}) {
				return errClosed
			}
			loads = append(loads, l)
		}
		if srv.Mode == ModeIsolated {
			srv.sparesDone = make(chan struct{})
			if !g.goBackground(func() {
				defer close(srv.sparesDone)
				g.keepSpares(srv)
			}) {
				close(srv.sparesDone)
				return errClosed
			}
		}
	}
	tick := time.NewTicker(10 * time.Millisecond) // Stats has no event to wait on
	defer tick.Stop()
	for _, l := range loads {
		for waiting := true; waiting; {
			select {
			case <-l.done:
				waiting = false
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				if l.srv.failing() {
					g.log.Warn("gateway: serving without this server's catalog until it answers: a connect to it failed",
						"server", l.srv.name)
					l.srv.mu.Lock()
					if l.srv.fprint == [3]string{} && l.srv.listErr == nil { // not listed yet
						l.srv.listErr = errNotListed
					}
					l.srv.mu.Unlock()
					waiting = false
				}
			}
		}
	}
	return nil
}

// errClosed: the gateway is closing; nothing more starts.
var errClosed = errors.New("gateway: closed")

// errNotListed is the list error the status page shows for a server left
// out at start until its catalog loads or its lists fail.
var errNotListed = errors.New("not listed yet: its connects are failing (the gateway keeps connecting; the log has the error)")

// failing reports whether every replica of srv is failing
// (mcpool.Stats.Failing).
func (srv *server) failing() bool {
	if srv.Replicas != nil {
		if rs := srv.Replicas(); len(rs) > 0 {
			for _, r := range rs {
				if !r.Stats.Failing() {
					return false
				}
			}
			return true
		}
	}
	return srv.Upstream.Stats().Failing()
}

// Reload changes the gateway's servers to servers, named by naming, as
// [Options] Servers and Naming give them (nil naming: the rule of a
// GroupConfig with these servers' names), while calls go on:
//
//   - a server that is new is made and its catalog loaded (its spares
//     warmed in the background), then served;
//   - a server whose Server differs in any field (mode, headers, spares,
//     queue, tool policy, access rule, rate limit, token exchange, Config,
//     or another Upstream, such as a Group's replacement of a changed
//     server; function fields compare by whether they are set), or whose
//     names naming changes, is replaced the same way;
//   - a server no longer listed, and the old one of a replaced server,
//     takes no new calls: calls already routed to it finish on it, within
//     ctx and DrainTimeout, and then the pools the gateway made for it
//     (isolated sessions' pools, spares, passthrough pools) are closed.
//     Its Upstream is not closed: it is the caller's.
//
// The new set of servers is served before the old ones drain: Reload
// returns after the drain. Downstream sessions are sent list_changed for
// tools, prompts and resources when a server was added, removed or
// replaced. Servers whose Server is the same keep their state: catalogs,
// sessions, figures. Gateway-wide Options (MaxInFlight, Token…) do not
// change.
//
// When servers or naming are invalid (a server with no name or twice, one
// naming does not know, a bad mode), Reload returns the error and the
// gateway keeps its servers. Reloads are serialized; Reload is safe to
// call while calls are under way, and returns an error after Close.
func (g *Gateway) Reload(ctx context.Context, servers []Server, naming *mcpool.Naming) error {
	if naming == nil {
		gc := &mcpool.GroupConfig{}
		for _, s := range servers {
			gc.Servers = append(gc.Servers, mcpool.ServerConfig{Name: s.Name})
		}
		var err error
		if naming, err = gc.Naming(); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.ctx.Err() != nil {
		return errors.New("gateway: closed: nothing to reload")
	}
	old := g.set.Load()
	set, fresh, err := g.newServerSet(servers, naming, old)
	if err != nil {
		return err
	}
	var gone []*server
	for _, srv := range old.servers {
		if set.byName[srv.name] != srv {
			gone = append(gone, srv)
		}
	}
	if len(fresh) == 0 && len(gone) == 0 {
		return nil
	}
	if err := g.startServers(ctx, fresh); err != nil {
		for _, srv := range fresh {
			// Never served: its catalog load, still running, must not
			// take resources' URIs from the servers that list them.
			srv.removed.Store(true)
			_ = srv.close(context.Background())
		}
		g.resMu.Lock()
		for uri, owner := range g.resOwner {
			if owner.removed.Load() {
				delete(g.resOwner, uri)
			}
		}
		g.resMu.Unlock()
		return fmt.Errorf("gateway: reload: %w", err)
	}
	g.set.Store(set)
	// The old servers' resources go to the servers that list them now.
	g.resMu.Lock()
	for _, srv := range gone {
		srv.removed.Store(true)
	}
	for uri, owner := range g.resOwner {
		if owner.removed.Load() {
			delete(g.resOwner, uri)
		}
	}
	g.resMu.Unlock()
	for _, srv := range set.servers {
		g.claimResources(srv)
	}
	g.notifyChanged([3]bool{true, true, true})
	var added, removed, replaced []string
	for _, srv := range fresh {
		if old.byName[srv.name] != nil {
			replaced = append(replaced, srv.name)
		} else {
			added = append(added, srv.name)
		}
	}
	for _, srv := range gone {
		if set.byName[srv.name] == nil {
			removed = append(removed, srv.name)
		}
	}
	g.log.Info("reload: servers changed", "added", added, "removed", removed, "replaced", replaced)

	// Drain the old servers, then close what the gateway made for them.
	dctx, cancel := context.WithTimeout(ctx, g.opts.DrainTimeout)
	defer cancel()
	errs := make([]error, len(gone))
	var wg sync.WaitGroup
	for i, srv := range gone {
		wg.Go(func() {
			if n, err := srv.calls.Drain(dctx); err != nil {
				g.log.Warn("reload: calls still routed to a removed server when the drain ended: closing under them", "server", srv.name, "calls", n, "error", err)
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			errs[i] = errors.Join(g.closeIsolated(cctx, srv), srv.close(cctx))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// claimResources makes srv the owner of the resources it lists that no
// server owns.
func (g *Gateway) claimResources(srv *server) {
	srv.mu.Lock()
	resources := srv.resources
	srv.mu.Unlock()
	g.resMu.Lock()
	defer g.resMu.Unlock()
	if srv.removed.Load() {
		return
	}
	for _, r := range resources {
		if _, taken := g.resOwner[r.URI]; !taken {
			g.resOwner[r.URI] = srv
		}
	}
}

// closeIsolated closes every downstream session's pool for srv.
func (g *Gateway) closeIsolated(ctx context.Context, srv *server) error {
	var pools []*isoPool
	g.iso.mu.Lock()
	for _, is := range g.iso.sessions {
		is.mu.Lock()
		if e := is.pools[srv]; e != nil {
			delete(is.pools, srv)
			pools = append(pools, e)
		}
		is.mu.Unlock()
	}
	g.iso.mu.Unlock()
	var errs []error
	for _, e := range pools {
		<-e.ready
		if e.p == nil {
			continue // failed, and uncounted by its caller
		}
		g.iso.mu.Lock()
		g.iso.n--
		g.iso.mu.Unlock()
		errs = append(errs, e.p.Close(ctx))
	}
	return errors.Join(errs...)
}

// enter counts a call on srv, or, when a Reload has taken srv out and it
// is draining, on the server of that name now (a call that routed just
// before the reload and had not started). A server removed altogether is
// an unknown name.
func (g *Gateway) enter(srv *server, req mcp.Request) (*server, error) {
	if srv.calls.Enter() {
		return srv, nil
	}
	set := g.set.Load()
	if cur := set.byName[srv.name]; cur != nil && cur.calls.Enter() {
		return cur, nil
	}
	known := g.visibleNames(req) // policy.go
	return nil, rpcError(CodeUnknownName, fmt.Sprintf("server %s was removed from the gateway by a config reload; list the tools again (servers: %v)", srv.name, known),
		ErrorData{Server: srv.name, Reason: "unknown", Known: known})
}

// sameServer reports whether a and b serve a server the same way.
func sameServer(a, b Server) bool {
	return a.Name == b.Name && a.Mode == b.Mode && sameUpstream(a.Upstream, b.Upstream) &&
		slices.Equal(a.ForwardHeaders, b.ForwardHeaders) && a.Spares == b.Spares && a.MaxQueued == b.MaxQueued &&
		(a.Replicas == nil) == (b.Replicas == nil) && mcpool.SameConfig(a.Config, b.Config) && samePolicy(a, b)
}

// samePolicy reports whether a and b have the same security settings: a
// reload that tightens a tool policy or an access rule must take effect.
func samePolicy(a, b Server) bool {
	return slices.Equal(a.Tools.Allow, b.Tools.Allow) && slices.Equal(a.Tools.Deny, b.Tools.Deny) &&
		slices.Equal(a.Access.Scopes, b.Access.Scopes) && slices.Equal(a.Access.Subjects, b.Access.Subjects) &&
		(a.RateLimit == nil) == (b.RateLimit == nil) && (a.RateLimit == nil || *a.RateLimit == *b.RateLimit) &&
		sameExchange(a.TokenExchange, b.TokenExchange)
}

// sameExchange compares two token exchange settings by what they are
// configured with (a config file read again makes new ones).
func sameExchange(a, b *oauth.Exchanger) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a == b || a.TokenURL == b.TokenURL && a.ClientID == b.ClientID && a.ClientSecret == b.ClientSecret &&
		a.Audience == b.Audience && a.Resource == b.Resource && slices.Equal(a.Scopes, b.Scopes) &&
		a.HTTPClient == b.HTTPClient && a.Skew == b.Skew
}

func sameUpstream(a, b Upstream) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}

// sameNames reports whether a and b name server's tools alike.
func sameNames(a, b *mcpool.Naming, server string) bool {
	na, _ := a.Name(server, "t")
	nb, _ := b.Name(server, "t")
	return na == nb && a.Separator() == b.Separator()
}
