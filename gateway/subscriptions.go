package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Subscriptions (MCP spec 2025-11-25, "Resources: Subscriptions"):
// resources/subscribe and resources/unsubscribe go to the server that
// owns the URI (one that lists it, else one whose resource template
// matches it), and the server's notifications/resources/updated come back
// to the downstream sessions subscribed to that URI, and to no other. In
// ModeShared one upstream subscription serves every
// downstream subscriber: it is made by the first and ended when the last
// unsubscribes or ends. In ModeIsolated each downstream session subscribes
// its own upstream session, which ends with it, and only it hears of that
// session's updates.

type subKey struct {
	srv *server
	uri string
}

type subHub struct {
	mu      sync.Mutex
	subs    map[subKey]map[*mcp.ServerSession]bool
	watched map[*mcp.ServerSession]bool
}

// resourceServer returns the server that owns uri: the one that lists it,
// else the one whose resource template matches it, among the servers the
// caller of req may see (policy.go: visible). A URI that only a server the
// caller may not see owns is unknown, as if that server did not exist; the
// server is returned with the error, for the audit only.
func (g *Gateway) resourceServer(ctx context.Context, req mcp.Request, uri string) (*server, error) {
	g.resMu.Lock()
	srv := g.resOwner[uri]
	g.resMu.Unlock()
	if srv == nil && req != nil {
		srv = g.passthroughOwner(ctx, req, uri)
	}
	if srv != nil && visible(srv, req) {
		return srv, nil
	}
	t, err := g.templateServer(ctx, req, uri, false)
	if err != nil && srv != nil {
		return srv, err
	}
	return t, err
}

// listenExtraKey is the context key of a subscriptions/listen request's
// Extra. Under 2026-07-28 the SDK serves a listen's resource subscriptions
// by calling the subscribe and unsubscribe handlers with requests of its
// own that carry no Extra: no token info, so no identity for the access
// rule and the rate limit, and no headers for a passthrough partition. The
// gateway's receiving middleware (serve.go) puts the listen's Extra in its
// context, which those requests are served with.
type listenExtraKey struct{}

func withListenExtra(ctx context.Context, extra *mcp.RequestExtra) context.Context {
	return context.WithValue(ctx, listenExtraKey{}, extra)
}

// withCaller gives a subscribe or unsubscribe request that the SDK made
// for a subscriptions/listen the Extra of that listen.
func withCaller[P mcp.Params](ctx context.Context, req *mcp.ServerRequest[P]) *mcp.ServerRequest[P] {
	extra, _ := ctx.Value(listenExtraKey{}).(*mcp.RequestExtra)
	if req.Extra != nil || extra == nil {
		return req
	}
	cp := *req
	cp.Extra = extra
	return &cp
}

// routeResource is resourceServer and permit (policy.go) for the
// subscription requests: the server of uri, or the error the caller gets.
func (g *Gateway) routeResource(ctx context.Context, req mcp.Request, uri string) (*server, error) {
	srv, err := g.resourceServer(ctx, req, uri)
	if err == nil && srv == nil {
		err = g.unknownResource(req, uri) // serve.go
	}
	if err == nil {
		err = g.permit(srv, req, oauth.KindResource, uri, uri)
	}
	if err != nil {
		return nil, err
	}
	return srv, nil
}

// subscribe forwards resources/subscribe. It passes permit (access and the
// rate limit) whether or not it is the one that subscribes upstream.
func (g *Gateway) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	req = withCaller(ctx, req)
	uri := req.Params.URI
	srv, err := g.routeResource(ctx, req, uri)
	if err != nil {
		return err
	}
	ss := req.Session
	k := subKey{srv, uri}
	g.subs.mu.Lock()
	if g.subs.subs == nil {
		g.subs.subs = map[subKey]map[*mcp.ServerSession]bool{}
		g.subs.watched = map[*mcp.ServerSession]bool{}
	}
	first := len(g.subs.subs[k]) == 0
	g.subs.mu.Unlock()
	if first || srv.Mode != ModeShared {
		err := g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
			pu, ok := up.(protocolUpstream)
			if !ok {
				return fmt.Errorf("server %s: its upstream does not offer subscriptions", srv.name)
			}
			return pu.Subscribe(ctx, &mcp.SubscribeParams{URI: uri})
		})
		if err != nil {
			return err
		}
	}
	g.subs.mu.Lock()
	if g.subs.subs[k] == nil {
		g.subs.subs[k] = map[*mcp.ServerSession]bool{}
	}
	g.subs.subs[k][ss] = true
	watch := ss != nil && !g.subs.watched[ss]
	if watch {
		g.subs.watched[ss] = true
	}
	g.subs.mu.Unlock()
	if watch {
		g.iso.mu.Lock()
		if !g.iso.closed {
			g.iso.closing.Add(1)
			go g.releaseSubscriptions(ss)
		}
		g.iso.mu.Unlock()
	}
	return nil
}

// unsubscribe forwards resources/unsubscribe. It passes permit before the
// subscription is dropped: one refused (rate limited) is kept, and ends
// with its session if not retried.
func (g *Gateway) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	req = withCaller(ctx, req)
	uri := req.Params.URI
	srv, err := g.routeResource(ctx, req, uri)
	if err != nil {
		return err
	}
	k := subKey{srv, uri}
	g.subs.mu.Lock()
	delete(g.subs.subs[k], req.Session)
	last := len(g.subs.subs[k]) == 0
	if last {
		delete(g.subs.subs, k)
	}
	g.subs.mu.Unlock()
	if !last && srv.Mode == ModeShared {
		return nil
	}
	if ctx.Err() != nil {
		// The upstream subscription ends even so: under 2026-07-28 the
		// SDK unsubscribes as a subscriptions/listen stream ends, with
		// that stream's context, cancelled by then.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	err = g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		pu, ok := up.(protocolUpstream)
		if !ok {
			return fmt.Errorf("server %s: its upstream does not offer subscriptions", srv.name)
		}
		return pu.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri})
	})
	if err != nil {
		return err
	}
	return nil
}

// releaseSubscriptions drops ss's subscriptions when it ends, and ends the
// shared upstream subscriptions it was the last subscriber of (isolated
// upstream sessions end with ss, and their subscriptions with them).
func (g *Gateway) releaseSubscriptions(ss *mcp.ServerSession) {
	defer g.iso.closing.Done()
	_ = ss.Wait()
	var ends []subKey
	g.subs.mu.Lock()
	delete(g.subs.watched, ss)
	for k, set := range g.subs.subs {
		if !set[ss] {
			continue
		}
		delete(set, ss)
		if len(set) == 0 {
			delete(g.subs.subs, k)
			if k.srv.Mode == ModeShared {
				ends = append(ends, k)
			}
		}
	}
	g.subs.mu.Unlock()
	for _, k := range ends {
		pu, ok := k.srv.Upstream.(protocolUpstream)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := pu.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: k.uri}); err != nil {
			g.log.Debug("subscriptions: unsubscribing upstream after the last subscriber ended", "server", k.srv.name, "uri", k.uri, "error", err)
		}
		cancel()
	}
}

// relayUpdated passes notifications/resources/updated from srv to the
// downstream sessions subscribed to the URI (the SDK's server keeps who
// subscribed to what, and sends to a 2026-07-28 client on its
// subscriptions/listen stream): from a shared upstream session, to every
// downstream session subscribed to that URI of srv; from an isolated one
// (owner set), to owner alone, if it subscribed. Otherwise it is dropped.
func (g *Gateway) relayUpdated(srv *server, owner *mcp.ServerSession, req *mcp.ResourceUpdatedNotificationRequest) {
	uri := req.Params.URI
	g.subs.mu.Lock()
	set := g.subs.subs[subKey{srv, uri}]
	n := len(set)
	if owner != nil && !set[owner] {
		n = 0
	}
	g.subs.mu.Unlock()
	if n == 0 {
		return
	}
	params := &mcp.ResourceUpdatedNotificationParams{URI: uri}
	if owner != nil {
		params.Meta = mcp.Meta{onlyMetaKey: owner}
	}
	if err := g.mcp.ResourceUpdated(g.ctx, params); err != nil {
		g.log.Debug("subscriptions: relaying resources/updated failed", "server", srv.name, "error", err)
	}
}

// onlyMetaKey marks a notifications/resources/updated for one downstream
// session (its value, a *mcp.ServerSession): the SDK's
// Server.ResourceUpdated sends to every session subscribed to the URI, and
// onlyOwnUpdates, sending middleware of the gateway's server, drops the
// others' copies and takes the mark out of the one that goes.
const onlyMetaKey = "io.mcpool/only"

func (g *Gateway) onlyOwnUpdates(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "notifications/resources/updated" {
			return next(ctx, method, req)
		}
		p, ok := req.GetParams().(*mcp.ResourceUpdatedNotificationParams)
		if !ok || p == nil {
			return next(ctx, method, req)
		}
		only, ok := p.Meta[onlyMetaKey].(*mcp.ServerSession)
		if !ok {
			return next(ctx, method, req)
		}
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if ss != only {
			return nil, nil
		}
		cp := *p
		cp.Meta = mcp.Meta{}
		for k, v := range p.Meta {
			if k != onlyMetaKey {
				cp.Meta[k] = v
			}
		}
		if len(cp.Meta) == 0 {
			cp.Meta = nil
		}
		return next(ctx, method, &mcp.ServerRequest[*mcp.ResourceUpdatedNotificationParams]{Session: ss, Params: &cp})
	}
}
