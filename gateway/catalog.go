package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The merged catalog. Shared and isolated servers' lists come from their
// Upstream (whose pool caches them and empties the cache on list_changed);
// a watcher asks for them every CatalogPoll, which is a cache hit unless the
// server changed something, and tells downstream sessions when a list
// differs. Passthrough servers are listed per credential, on each request.

// refreshCatalog fetches srv's lists and reports whether any changed. When
// notify is set, downstream sessions are told of the lists that changed.
func (g *Gateway) refreshCatalog(ctx context.Context, srv *server, notify bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	up := srv.Upstream
	var (
		tools            []*mcp.Tool
		prompts          []*mcp.Prompt
		resources        []*mcp.Resource
		terr, perr, rerr error
	)
	// One after another: three lists at once would make a pool whose
	// per-session limit starts at one connect a session (for stdio, start
	// a process) per list. After the first, the session is warm and the
	// others cost a round trip each.
	tools, terr = up.ListTools(ctx)
	prompts, perr = up.ListPrompts(ctx)
	resources, rerr = up.ListResources(ctx)
	// A server without prompts or resources answers "method not found":
	// an empty list, not a failure.
	if isMethodNotFound(perr) {
		prompts, perr = nil, nil
	}
	if isMethodNotFound(rerr) {
		resources, rerr = nil, nil
	}
	nsTools, toolNames := named(srv, tools, func(t *mcp.Tool) *string { return &t.Name })
	nsPrompts, promptNames := named(srv, prompts, func(p *mcp.Prompt) *string { return &p.Name })
	fp := [3]string{fingerprint(nsTools), fingerprint(nsPrompts), fingerprint(resources)}

	srv.mu.Lock()
	old := srv.fprint
	var changed [3]bool
	// A list that fails leaves the merged list (as a Group's merged lists
	// do), unless the gateway is shutting down.
	drop := ctx.Err() == nil
	if terr == nil {
		srv.tools, srv.ownNames[0], srv.fprint[0], changed[0] = nsTools, toolNames, fp[0], old[0] != fp[0]
	} else if drop {
		srv.tools, srv.ownNames[0], srv.fprint[0], changed[0] = nil, nil, "", old[0] != ""
	}
	if perr == nil {
		srv.prompts, srv.ownNames[1], srv.fprint[1], changed[1] = nsPrompts, promptNames, fp[1], old[1] != fp[1]
	} else if drop {
		srv.prompts, srv.ownNames[1], srv.fprint[1], changed[1] = nil, nil, "", old[1] != ""
	}
	if rerr == nil {
		srv.resources, srv.fprint[2], changed[2] = resources, fp[2], old[2] != fp[2]
	} else if drop {
		srv.resources, srv.fprint[2], changed[2] = nil, "", old[2] != ""
	}
	err := errors.Join(terr, perr, rerr)
	if (err == nil) != (srv.listErr == nil) {
		// A server going down leaves the merged list; coming back joins it.
		changed = [3]bool{true, true, true}
	}
	wasFailing := srv.listErr != nil
	srv.listErr = err
	// Warned once per run of failures, and only when a warning was
	// written: a listing cut short by shutdown is not one.
	warn := err != nil && !srv.listWarned && srv.ctx.Err() == nil
	srv.listWarned = warn || err != nil && srv.listWarned
	srv.mu.Unlock()
	if changed != [3]bool{} {
		// Calls see the new lists from now: so do list answers, before
		// the capability read below (I/O) and the notification.
		g.lists.invalidate() // listcache.go
	}
	if err == nil {
		g.learnCapabilities(ctx, srv, changed != [3]bool{}) // completion.go
	}

	if (rerr == nil || drop) && !srv.removed.Load() {
		g.resMu.Lock()
		for uri, owner := range g.resOwner {
			if owner == srv {
				delete(g.resOwner, uri)
			}
		}
		for _, r := range resources {
			if _, taken := g.resOwner[r.URI]; !taken && !srv.removed.Load() {
				g.resOwner[r.URI] = srv
			}
		}
		g.resMu.Unlock()
	}
	// Logged when it changes, not at every poll (the status page shows the
	// error meanwhile).
	switch {
	case warn:
		g.log.Warn("catalog: listing failed; the server is left out of the merged lists until it answers", "server", srv.name, "error", errorText(err)) // each cause once
	case err == nil && wasFailing:
		g.log.Info("catalog: the server answers again; its lists are merged", "server", srv.name)
	}
	if notify {
		g.notifyChanged(changed)
	}
}

func isMethodNotFound(err error) bool {
	var je *jsonrpc.Error
	return errors.As(err, &je) && je.Code == jsonrpc.CodeMethodNotFound
}

func fingerprint[T any](items []*T) string {
	b, _ := json.Marshal(items)
	h := sha256.Sum256(b)
	return string(h[:])
}

// watchCatalogs checks every shared and isolated server's lists each
// CatalogPoll until Close.
func (g *Gateway) watchCatalogs() {
	t := time.NewTicker(g.opts.CatalogPoll)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
		}
		for _, srv := range g.set.Load().servers {
			if srv.Mode == ModeShared {
				srv.unavailable.Store(srv.Upstream.Stats().Status == mcpool.StatusUnavailable)
			}
			if srv.Mode != ModePassthrough {
				g.refreshAsync(srv)
			}
		}
	}
}

// refreshAsync refreshes srv's catalog in a goroutine of its own, so that
// a server whose lists hang (connects failing until its breaker opens)
// holds back only its own catalog. Asked while a refresh of srv is under
// way, it has that one run again once done: a list_changed may have come
// after its lists were read.
func (g *Gateway) refreshAsync(srv *server) {
	srv.refreshAgain.Store(true)
	if srv.refreshing.CompareAndSwap(false, true) {
		g.bg.Go(func() { g.refreshLoop(srv) })
	}
}

// refreshLoop refreshes srv's catalog as long as it is asked to. The
// caller has set srv.refreshing, which refreshLoop clears when it returns.
func (g *Gateway) refreshLoop(srv *server) {
	for {
		for srv.refreshAgain.Swap(false) {
			g.refreshCatalog(srv.ctx, srv, true)
		}
		srv.refreshing.Store(false)
		// Asked between the last Swap and the Store: this loop runs it,
		// unless the asker has started one.
		if !srv.refreshAgain.Load() || !srv.refreshing.CompareAndSwap(false, true) {
			return
		}
	}
}

// The SDK sends list_changed to downstream sessions (legacy sessions, and
// 2026-07-28 clients subscribed with subscriptions/listen) when a feature is
// added or removed. The gateway answers the list methods itself, so it
// registers a placeholder and removes it again: the SDK debounces the two
// changes into one notification, and the placeholder is never listed.
const placeholder = "mcpool-gateway-list-changed"

func (g *Gateway) notifyChanged(changed [3]bool) {
	if changed != [3]bool{} {
		g.lists.invalidate() // listcache.go: before clients hear of it
	}
	if changed[0] {
		g.mcp.AddTool(&mcp.Tool{Name: placeholder, InputSchema: map[string]any{"type": "object"}}, nil)
		g.mcp.RemoveTools(placeholder)
	}
	if changed[1] {
		g.mcp.AddPrompt(&mcp.Prompt{Name: placeholder}, nil)
		g.mcp.RemovePrompts(placeholder)
	}
	if changed[2] {
		uri := "mcpool:" + placeholder
		g.mcp.AddResource(&mcp.Resource{URI: uri, Name: placeholder}, nil)
		g.mcp.RemoveResources(uri)
	}
}

// named returns copies of srv's items under the names the Naming gives
// them downstream, and each downstream name's item's own name. When two
// items get the same name (a name changed by the rule meets one that had
// it already), the first keeps it, as in a Group's lists.
func named[T any](srv *server, items []*T, name func(*T) *string) ([]*T, map[string]string) {
	out := make([]*T, 0, len(items))
	own := make(map[string]string, len(items))
	for _, it := range items {
		c := *it
		n := name(&c)
		orig := *n
		*n, _ = srv.naming.Name(srv.name, orig)
		if _, dup := own[*n]; dup {
			continue
		}
		own[*n] = orig
		out = append(out, &c)
	}
	return out, own
}

// resolve returns the server of a downstream tool (kind 0) or prompt
// (kind 1) name and the server's own name for it: the server by the
// Naming's Route, the own name from the server's list (the caller's own in
// ModePassthrough). When that list cannot be had, the rest of the name is
// used as it is and the call says what is wrong, as a Group's calls do.
//
// A server the caller of req may not see (policy.go: visible) is refused
// as a name no server has, before its list is read; it is returned with
// the error, for the audit only.
func (g *Gateway) resolve(ctx context.Context, req mcp.Request, kind int, name string) (*server, string, error) {
	what := [2]string{"tool", "prompt"}[kind]
	set := g.set.Load()
	server, rest, ok := set.naming.Route(name)
	srv := set.byName[server]
	if !ok || srv == nil {
		return nil, "", g.unknown(req, what, name, "")
	}
	if !visible(srv, req) {
		return srv, "", g.unknown(req, what, name, "")
	}
	var own map[string]string
	if srv.Mode == ModePassthrough {
		own = g.passthroughNames(ctx, srv, req, kind)
	} else {
		srv.mu.Lock()
		own = srv.ownNames[kind]
		srv.mu.Unlock()
	}
	if own == nil {
		return srv, rest, nil
	}
	orig, ok := own[name]
	if !ok {
		return nil, "", g.unknown(req, what, name, srv.name)
	}
	return srv, orig, nil
}

// serverNames returns the names of every server served. An error to a
// caller names only those it may see: visibleNames (policy.go).
func (g *Gateway) serverNames() []string {
	servers := g.set.Load().servers
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.name
	}
	return names
}

// ListChanged tells the gateway that a server's list ("tools", "prompts" or
// "resources") changed upstream, so that downstream sessions hear of it at
// once rather than at the next CatalogPoll. Install it as
// mcpool.GroupConfig.OnListChanged. It does no I/O and is safe to call from
// any goroutine.
func (g *Gateway) ListChanged(server, kind string) {
	srv := g.set.Load().byName[server]
	if srv == nil {
		return
	}
	if srv.Mode == ModePassthrough {
		g.notifyChanged(kindMask(kind))
		return
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func kindMask(kind string) [3]bool {
	return [3]bool{kind == "tools", kind == "prompts", kind == "resources"}
}
