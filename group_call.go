package mcpool

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// route finds the server of a tool or prompt name (see Naming.Route) and
// the server's own name for it, with the group's copy of its definition.
// The member it returns is entered (see member.enter): call its exit when
// the call is done.
func route[T any](ctx context.Context, g *Group, lk listKind[T], kind, name string) (*member, string, *T, error) {
	var m *member
	var rest string
	for m == nil {
		st := g.state()
		server, r, ok := st.naming.Route(name)
		if !ok {
			return nil, "", nil, &NotFoundError{Kind: kind, Name: name, Known: g.Servers()}
		}
		if m, rest = st.byName[server], r; !m.calls.Enter() {
			m = nil // replaced or removed by Update since: route again
		}
	}
	pt, err := memberList(ctx, m, lk)
	if err != nil {
		if ctx.Err() != nil {
			// The wait for the catalog took the caller's whole deadline:
			// its error says why (the server's connects failing), where
			// the call would only see the expired ctx.
			m.calls.Exit()
			return nil, "", nil, m.g.red.err(err)
		}
		// The catalog cannot be had (the server is down?): call by the
		// plain name, and let the call say what is wrong.
		return m, rest, nil, nil
	}
	orig, ok := pt.orig[name]
	if !ok {
		m.calls.Exit()
		return nil, "", nil, &NotFoundError{Kind: kind, Name: name, Server: m.name, Known: slices.Sorted(maps.Keys(pt.orig))}
	}
	return m, orig, pt.byKey[name], nil
}

// CallTool calls the tool the group names params.Name (see [Naming]:
// "server__tool") on that server's pools, under the server's own name for
// it; the result is the server's, unchanged. params is not modified.
//
// With replicas, the call goes to one chosen by the server's Balance. If
// that replica cannot take it (its breaker is open: ErrServerUnavailable;
// it cannot connect: ErrConnectFailed; it has no room in time:
// ErrPoolExhausted; it answered 429 again after the pool's one wait:
// ErrRateLimited) the call moves to the next replica, whatever the tool:
// the request never ran. If its session dies under the call and the
// pool's own retry on that replica fails too ([*SessionLostError]), the
// call moves when that cannot run a tool with side effects twice: the
// request provably never ran (SessionLostError.MayHaveRun false), or the
// tool is marked read-only or idempotent, or ctx carries [WithRetry] — the
// rules of [Pool.CallTool]. Each replica is tried once. While another
// replica is left to try, a replica that has no session and whose
// connects are failing (its server just died, its breaker not open yet)
// fails the call at once with ErrConnectFailed rather than keep it
// waiting for a reconnect, so that the call moves within ctx; the last
// replica tried waits, within ctx, as a lone Pool does.
//
// Errors: a [*NotFoundError] (errors.Is ErrNotFound) listing the servers,
// or the server's tools, when the name matches none; the catalog's error
// when ctx ended while waiting for the server's catalog (a [*ConnectError]
// with the last failure when its connects were failing); otherwise those
// of Pool.CallTool, from the last replica tried.
func (g *Group) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if params == nil {
		params = &mcp.CallToolParams{}
	}
	m, orig, tool, err := route(ctx, g, toolList, "tool", params.Name)
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	return m.callTool(ctx, params, orig, tool)
}

// callTool calls the tool the server calls orig (tool is the group's copy
// of its definition, nil if unknown) with params' arguments.
func (m *member) callTool(ctx context.Context, params *mcp.CallToolParams, orig string, tool *mcp.Tool) (*mcp.CallToolResult, error) {
	p := cloneCallParams(params)
	p.Name = orig
	safe := ctx.Value(retryKey{}) != nil ||
		tool != nil && tool.Annotations != nil && (tool.Annotations.ReadOnlyHint || tool.Annotations.IdempotentHint)
	var res *mcp.CallToolResult
	err := m.do(ctx, safe, func(ctx context.Context, pool *Pool) error {
		var err error
		res, err = pool.CallTool(ctx, p)
		return err
	})
	return res, m.g.red.err(err)
}

// GetPrompt gets the prompt the group names params.Name from that server. Getting a prompt has no side effects, so with replicas a failure
// that is not the server's own answer moves to the next replica. Errors: a
// [*NotFoundError], or those of [Pool.Do] and the server's.
func (g *Group) GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	if params == nil {
		params = &mcp.GetPromptParams{}
	}
	m, orig, _, err := route(ctx, g, promptList, "prompt", params.Name)
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	return m.getPrompt(ctx, params, orig)
}

func (m *member) getPrompt(ctx context.Context, params *mcp.GetPromptParams, orig string) (*mcp.GetPromptResult, error) {
	var res *mcp.GetPromptResult
	err := m.do(ctx, true, func(ctx context.Context, pool *Pool) error {
		return pool.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
			// A copy per attempt: the SDK writes protocol metadata into it.
			cp := *params
			cp.Name, cp.Meta = orig, maps.Clone(params.Meta)
			var err error
			res, err = cs.GetPrompt(ctx, &cp)
			return err
		})
	})
	return res, m.g.red.err(err)
}

// ReadResource reads a resource from the server that listed its URI (see
// [Group.ListResources]). Reading has no side effects, so with replicas a
// failure that is not the server's own answer moves to the next replica.
// Errors: a [*NotFoundError] when no server lists the URI (for a URI made
// from a resource template, read it with Group.Pool(server).Do), or those
// of [Pool.Do] and the server's.
func (g *Group) ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	if params == nil {
		params = &mcp.ReadResourceParams{}
	}
	m, err := g.resourceServer(ctx, params.URI)
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	return m.readResource(ctx, params)
}

func (m *member) readResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	var res *mcp.ReadResourceResult
	err := m.do(ctx, true, func(ctx context.Context, pool *Pool) error {
		return pool.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
			cp := *params
			cp.Meta = maps.Clone(params.Meta)
			var err error
			res, err = cs.ReadResource(ctx, &cp)
			return err
		})
	})
	return res, m.g.red.err(err)
}

// resourceServer returns the first server, in configuration order, that
// lists uri, listing afresh (from the pools' caches) so that a server's
// new resources are found. The member it returns is entered.
func (g *Group) resourceServer(ctx context.Context, uri string) (*member, error) {
	if _, err := g.ListResources(ctx); err != nil && ctx.Err() != nil {
		return nil, err
	}
	var known []string
	for _, m := range g.state().members {
		m.mu.Lock()
		var ok bool
		if pt := m.resources; pt != nil {
			_, ok = pt.orig[uri]
			known = append(known, slices.Collect(maps.Keys(pt.orig))...)
		}
		m.mu.Unlock()
		if ok && m.calls.Enter() {
			return m, nil
		}
	}
	slices.Sort(known)
	return nil, &NotFoundError{Kind: "resource", Name: uri, Known: known}
}

// do runs fn on one of m's replicas, chosen by m.balance, and moves to the
// next replica when fn's error says the replica could not serve and moving
// is safe (see Group.CallTool). safe says the operation may run twice.
func (m *member) do(ctx context.Context, safe bool, fn func(ctx context.Context, p *Pool) error) error {
	return m.attempt(ctx, safe, m.balance, true, fn)
}

// list runs a catalog fetch: on the first replica that can take it, so
// that the same replica's catalog cache keeps answering, and without
// counting in the replicas' call figures.
func (m *member) list(ctx context.Context, fn func(ctx context.Context, p *Pool) error) error {
	return m.attempt(ctx, true, Failover, false, fn)
}

func (m *member) attempt(ctx context.Context, safe bool, balance Balance, count bool, fn func(ctx context.Context, p *Pool) error) error {
	tried := make([]bool, len(m.replicas))
	var err error
	for range m.replicas {
		i := m.pick(tried, balance)
		if i < 0 {
			break
		}
		tried[i] = true
		r := m.replicas[i]
		if count {
			r.inFlight.Add(1)
			r.calls.Add(1)
		}
		actx := ctx
		if slices.Contains(tried, false) {
			// Another replica is left: this one's pool must not keep the
			// call waiting for a reconnect (see failFastLocked).
			actx = context.WithValue(ctx, failFastKey{}, true)
		}
		err = fn(actx, r.pool)
		if count {
			r.inFlight.Add(-1)
		}
		if err == nil {
			return nil
		}
		if count {
			r.errors.Add(1)
		}
		if len(m.replicas) == 1 || !movable(ctx, err, safe) {
			return err
		}
		if count {
			r.failovers.Add(1)
		}
		m.g.log.Debug("replica could not serve: trying another", "server", m.name, "replica", i, "error", err)
	}
	return err
}

// movable reports whether a call that failed with err on one replica may
// go to another.
func movable(ctx context.Context, err error, safe bool) bool {
	if ctx.Err() != nil || errors.Is(err, ErrPoolClosed) || errors.Is(err, ErrUnauthorized) {
		return false
	}
	var lost *SessionLostError
	if errors.As(err, &lost) { // first: its retry may have met the errors below
		return !lost.MayHaveRun || safe
	}
	if errors.Is(err, ErrServerUnavailable) || errors.Is(err, ErrConnectFailed) || errors.Is(err, ErrPoolExhausted) {
		return true // the call never reached a session
	}
	if errors.Is(err, ErrRateLimited) {
		return true // a 429: the server refused the request unrun
	}
	// Errors of Pool.Do (prompts, resources) come as the SDK gives them:
	// anything but the server's own answer may be the replica's failure.
	return safe && !serverAnswered(err)
}

// pick returns the index of the replica for the next attempt, or -1 when
// every replica has been tried. Replicas that can take calls now come
// first; when none can, the others are tried all the same so that the
// caller gets a replica's own error (ErrServerUnavailable, say).
func (m *member) pick(tried []bool, balance Balance) int {
	n := len(m.replicas)
	if n == 1 {
		if tried[0] {
			return -1
		}
		return 0
	}
	start := 0
	if balance != Failover {
		start = int(m.next.Add(1) % uint64(n))
	}
	for _, needReady := range []bool{true, false} {
		best, bestLoad := -1, int64(0)
		for k := range n {
			i := (start + k) % n
			r := m.replicas[i]
			if tried[i] || needReady && !r.pool.takesCalls() {
				continue
			}
			if balance != LeastLoaded {
				return i
			}
			if load := r.inFlight.Load(); best < 0 || load < bestLoad {
				best, bestLoad = i, load
			}
		}
		if best >= 0 {
			return best
		}
	}
	return -1
}

// ResolveTool returns the server of the tool the group names name and the
// server's own name for it, as CallTool routes it, without calling it: for
// callers that call the server another way (a keyed pool per end user, say).
// Errors: a [*NotFoundError], as CallTool's. When the server's catalog
// cannot be had, the rest of the name after the server's part is returned
// as it is (see [Naming.Route]), unless ctx ended while waiting for it:
// then the error is the catalog's (a [*ConnectError] with the last failure
// when the server's connects were failing), matching ctx's error.
func (g *Group) ResolveTool(ctx context.Context, name string) (server, tool string, err error) {
	m, orig, _, err := route(ctx, g, toolList, "tool", name)
	if err != nil {
		return "", "", err
	}
	return m.name, orig, nil
}

// ResolvePrompt is ResolveTool for prompts.
func (g *Group) ResolvePrompt(ctx context.Context, name string) (server, prompt string, err error) {
	m, orig, _, err := route(ctx, g, promptList, "prompt", name)
	if err != nil {
		return "", "", err
	}
	return m.name, orig, nil
}

// ResourceServer returns the server that ReadResource would read uri from.
// Errors: a [*NotFoundError] when no server lists it.
func (g *Group) ResourceServer(ctx context.Context, uri string) (string, error) {
	m, err := g.resourceServer(ctx, uri)
	if err != nil {
		return "", err
	}
	return m.name, nil
}

// GroupServer is one server of a [Group], under the server's own names for
// its tools and prompts: for callers that name them another way, or that
// serve the server apart from the others (a gateway). Its calls take the
// group's path (the server's Balance over its replicas, failover, the
// group's figures); its lists come from the first replica that answers.
// Get it with [Group.Server]. All methods are safe for concurrent use.
type GroupServer struct {
	m *member
}

// Server returns the named server of the group, or nil if it has none.
// It returns the same GroupServer for a server until [Group.Update]
// replaces the server: handles compare equal when they serve the same
// pools.
func (g *Group) Server(name string) *GroupServer {
	m := g.state().byName[name]
	if m == nil {
		return nil
	}
	return m.handle
}

// Name returns the server's name in the group's configuration.
func (s *GroupServer) Name() string { return s.m.name }

// rawList fetches one of the server's lists, under its own names, from the
// first replica that answers (see member.list).
func rawList[T any](ctx context.Context, s *GroupServer, fetch func(*Pool, context.Context) ([]*T, error)) ([]*T, error) {
	m, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	var items []*T
	err = m.list(ctx, func(ctx context.Context, p *Pool) error {
		var err error
		items, err = fetch(p, ctx)
		return err
	})
	return items, s.m.g.red.err(err)
}

// ListTools returns the server's tools under its own names, from its pools'
// catalog caches (see [Pool.ListTools]): from the first replica that
// answers. The tools are shared: treat them as read-only. Errors are those
// of Pool.ListTools, from the last replica tried.
func (s *GroupServer) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	return rawList(ctx, s, (*Pool).ListTools)
}

// ListPrompts is ListTools for prompts. A server without prompts answers
// "method not found" (a JSON-RPC error), as the server gives it.
func (s *GroupServer) ListPrompts(ctx context.Context) ([]*mcp.Prompt, error) {
	return rawList(ctx, s, (*Pool).ListPrompts)
}

// ListResources is ListTools for resources.
func (s *GroupServer) ListResources(ctx context.Context) ([]*mcp.Resource, error) {
	return rawList(ctx, s, (*Pool).ListResources)
}

// CallTool calls the tool the server calls params.Name, as [Group.CallTool]
// calls it (the same balancing, failover and errors, the group's knowledge
// of the tool's annotations); the result is the server's, unchanged.
// params is not modified.
func (s *GroupServer) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if params == nil {
		params = &mcp.CallToolParams{}
	}
	m, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	var tool *mcp.Tool
	if pt, err := memberList(ctx, m, toolList); err == nil {
		tool = pt.byKey[m.naming.qualify(m.prefix, params.Name)]
	}
	return m.callTool(ctx, params, params.Name, tool)
}

// GetPrompt gets the prompt the server calls params.Name, as
// [Group.GetPrompt] does.
func (s *GroupServer) GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	if params == nil {
		params = &mcp.GetPromptParams{}
	}
	m, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	return m.getPrompt(ctx, params, params.Name)
}

// ReadResource reads params.URI from the server, as [Group.ReadResource]
// does, whichever server lists the URI.
func (s *GroupServer) ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	if params == nil {
		params = &mcp.ReadResourceParams{}
	}
	m, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer m.calls.Exit()
	return m.readResource(ctx, params)
}

// ListResourceTemplates lists the server's resource templates from the
// first replica that answers (resources/templates/list, all pages). A
// server that declares no resources answers with none.
func (s *GroupServer) ListResourceTemplates(ctx context.Context) ([]*mcp.ResourceTemplate, error) {
	var out []*mcp.ResourceTemplate
	err := s.m.list(ctx, func(ctx context.Context, p *Pool) error {
		out = nil
		return p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
			if ir := cs.InitializeResult(); ir != nil && ir.Capabilities != nil && ir.Capabilities.Resources == nil {
				return nil
			}
			for t, err := range cs.ResourceTemplates(ctx, nil) {
				if err != nil {
					return err
				}
				out = append(out, t)
			}
			return nil
		})
	})
	return out, s.m.g.red.err(err)
}

// Complete asks the server for completions (completion/complete, MCP spec
// 2025-11-25 "Completion"); params.Ref names the prompt by the server's own
// name or the resource template by its URI template. It runs on one
// replica, as a read: it may be retried on another.
func (s *GroupServer) Complete(ctx context.Context, params *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	var res *mcp.CompleteResult
	err := s.m.do(ctx, true, func(ctx context.Context, p *Pool) error {
		return p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
			cp := *params
			var err error
			res, err = cs.Complete(ctx, &cp)
			return err
		})
	})
	return res, s.m.g.red.err(err)
}

// Subscribe subscribes the server to updates of params.URI
// (resources/subscribe); the server's notifications/resources/updated reach
// ClientHandlers.ResourceUpdated of the replica's Config. It runs on the
// first replica that can take it (failing over as the lists do), and the
// subscription stays pinned to that replica and, within it, to the session
// that took it (see [Pool.Subscribe]): Unsubscribe goes there. A URI
// already subscribed through this GroupServer is not subscribed again.
//
// What heals: when the session holding the subscription leaves its
// replica's pool (it died, the server restarted, a lifetime or health
// check retired it), that pool subscribes again on another of its
// sessions once it has one. What does not: the subscription stays with its
// replica while that replica is down (it is renewed there when the replica
// is back, not moved to another); and when [Group.Update] replaces or
// removes the server, its pools close and their subscriptions end with
// them: subscribe again on the new GroupServer.
func (s *GroupServer) Subscribe(ctx context.Context, params *mcp.SubscribeParams) error {
	m := s.m
	if err := m.takeSubTurn(ctx); err != nil {
		return err
	}
	defer func() { <-m.subTurn }()
	if params != nil {
		if _, have := m.subs[params.URI]; have {
			return nil
		}
	}
	var took *Pool
	err := m.list(ctx, func(ctx context.Context, p *Pool) error {
		if err := p.Subscribe(ctx, params); err != nil {
			return err
		}
		took = p
		return nil
	})
	if err != nil {
		return m.g.red.err(err)
	}
	if m.subs == nil {
		m.subs = make(map[string]*Pool)
	}
	m.subs[params.URI] = took
	return nil
}

// Unsubscribe ends a subscription made with Subscribe
// (resources/unsubscribe) on the replica, and the session, that holds it.
// A URI not subscribed through this GroupServer, or whose subscription
// went with its session, returns nil.
func (s *GroupServer) Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error {
	if params == nil {
		return errors.New("mcpool: Unsubscribe: params.URI is empty")
	}
	m := s.m
	if err := m.takeSubTurn(ctx); err != nil {
		return err
	}
	defer func() { <-m.subTurn }()
	p, ok := m.subs[params.URI]
	if !ok {
		return nil
	}
	delete(m.subs, params.URI)
	return m.g.red.err(p.Unsubscribe(ctx, params))
}

// takeSubTurn takes m.subTurn within ctx.
func (m *member) takeSubTurn(ctx context.Context) error {
	select {
	case m.subTurn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServerCapabilities returns the capabilities the server declared when its
// session was initialized (InitializeResult.capabilities), from the first
// replica that answers; nil if it declared none.
func (s *GroupServer) ServerCapabilities(ctx context.Context) (*mcp.ServerCapabilities, error) {
	var caps *mcp.ServerCapabilities
	err := s.m.list(ctx, func(ctx context.Context, p *Pool) error {
		return p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
			caps = nil
			if ir := cs.InitializeResult(); ir != nil {
				caps = ir.Capabilities
			}
			return nil
		})
	})
	return caps, s.m.g.red.err(err)
}
