package gateway

import (
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ToolPolicy filters a server's tools by the names the server gives them
// (before the gateway's prefix), with path.Match globs ("create_*",
// "*_delete"). A tool the policy filters out is absent from tools/list and
// a call to it is refused as an unknown tool (CodeUnknownName), never sent
// upstream. The zero ToolPolicy allows every tool.
type ToolPolicy struct {
	// Allow, if not empty, lists the tools served: a tool matching none is
	// filtered out.
	Allow []string
	// Deny lists tools filtered out; it wins over Allow.
	Deny []string
}

// Allows reports whether the policy lets the tool the server calls name
// through.
func (p ToolPolicy) Allows(name string) bool {
	if matchAny(p.Deny, name) {
		return false
	}
	return len(p.Allow) == 0 || matchAny(p.Allow, name)
}

// Access restricts who may see and call a server: an identity without
// access does not see its tools, prompts or resources, and its calls are
// refused as for names no server has. It needs Options.Auth (the identity
// comes from the caller's validated token). The zero Access lets every
// caller in.
type Access struct {
	// Scopes the caller's token must all carry.
	Scopes []string
	// Subjects, if not empty, are path.Match globs of which one must match
	// the token's subject.
	Subjects []string
}

// allows reports whether id has access.
func (a Access) allows(id oauth.Identity) bool {
	for _, s := range a.Scopes {
		if !id.HasScope(s) {
			return false
		}
	}
	return len(a.Subjects) == 0 || matchAny(a.Subjects, id.Subject)
}

func (a Access) set() bool { return len(a.Scopes) > 0 || len(a.Subjects) > 0 }

// RateLimit is a token bucket per identity (the caller's subject): Rate
// calls per second on average, bursts of up to Burst. A call beyond it is
// refused with CodeOverloaded, reason "rate_limited" and RetryAfterMs,
// nothing sent upstream. The buckets of identities idle for long enough to
// refill are evicted, so memory is bounded by the identities active lately.
type RateLimit struct {
	Rate  float64 // calls per second; must be positive
	Burst int     // zero means max(1, Rate)
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

func checkGlobs(server, field string, globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("gateway: server %q: %s glob %q: %v", server, field, g, err)
		}
	}
	return nil
}

// serverSecurity is a server's policy state.
type serverSecurity struct {
	limiter  *oauth.Limiter
	limited  rateCounter
	idents   sync.Map     // oauth.Identity.Grant → its latest *oauth.Identity (TokenExchange)
	stored   atomic.Int64 // identities stored, for the occasional sweep
	ordinary bool         // no tool policy and no access rule
}

type rateCounter struct{ atomic.Int64 }

func (c *rateCounter) add()        { c.Add(1) }
func (c *rateCounter) load() int64 { return c.Load() }

// initPolicy checks srv's policy and makes its limiter.
func (g *Gateway) initPolicy(srv *server) error {
	for _, f := range []struct {
		name  string
		globs []string
	}{{"tools.allow", srv.Tools.Allow}, {"tools.deny", srv.Tools.Deny}, {"access.subjects", srv.Access.Subjects}} {
		if err := checkGlobs(srv.name, f.name, f.globs); err != nil {
			return err
		}
	}
	if srv.Access.set() && g.opts.Auth == nil {
		return fmt.Errorf("gateway: server %q: access rules need the callers' identities: configure auth (an OAuth issuer)", srv.name)
	}
	rl := srv.RateLimit
	if rl == nil {
		rl = g.opts.RateLimit
	}
	if rl != nil {
		if rl.Rate <= 0 || rl.Burst < 0 {
			return fmt.Errorf("gateway: server %q: rate limit rate must be positive and burst not negative", srv.name)
		}
		burst := rl.Burst
		if burst == 0 {
			burst = max(1, int(rl.Rate))
		}
		srv.sec.limiter = oauth.NewLimiter(oauth.LimiterConfig{Rate: rl.Rate, Burst: burst, IdleEviction: 10 * time.Minute})
	}
	srv.sec.ordinary = len(srv.Tools.Allow) == 0 && len(srv.Tools.Deny) == 0 && !srv.Access.set()
	return nil
}

// visible reports whether the caller of req may see srv at all: the one
// owner of the access rule. Whatever resolves a name or URI to a server,
// lists a server's items or names servers in an error asks it, so that a
// caller without access learns nothing of the server (its answers are
// those for a server that does not exist).
func visible(srv *server, req mcp.Request) bool {
	return !srv.Access.set() || srv.Access.allows(callerIdentity(req))
}

// listCacheable is the cache hint of the gateway's merged lists (MCP
// 2026-07-28, "cacheScope"): "private" when a list may differ from caller
// to caller (a server with an access rule, or a passthrough server listed
// with each caller's credentials), else "public". ttlMs stays 0: the
// gateway tells its clients of changes with list_changed.
func (g *Gateway) listCacheable() mcp.Cacheable {
	for _, srv := range g.set.Load().servers {
		if srv.Mode == ModePassthrough || srv.Access.set() {
			return mcp.Cacheable{CacheScope: "private"}
		}
	}
	return mcp.Cacheable{CacheScope: "public"}
}

// visibleNames returns the names of the servers the caller of req may see,
// for the errors that name servers.
func (g *Gateway) visibleNames(req mcp.Request) []string {
	names := []string{}
	for _, srv := range g.set.Load().servers {
		if visible(srv, req) {
			names = append(names, srv.name)
		}
	}
	return names
}

// visibleTools filters a listing of srv's tools (downstream names, own
// maps them to the server's) by its tool policy and access rule.
func visibleTools(srv *server, req mcp.Request, tools []*mcp.Tool, own map[string]string) []*mcp.Tool {
	if srv.sec.ordinary {
		return tools
	}
	if !visible(srv, req) {
		return nil
	}
	if len(srv.Tools.Allow) == 0 && len(srv.Tools.Deny) == 0 {
		return tools
	}
	return slices.DeleteFunc(slices.Clone(tools), func(t *mcp.Tool) bool {
		name, ok := own[t.Name]
		return !ok || !srv.Tools.Allows(name)
	})
}

// permit is the policy check of a request that goes to srv (the server's
// own name for the tool, prompt or resource): access, the tool policy,
// then the rate limit. Every request routed to one server passes it before
// g.call: tools/call, prompts/get, resources/read, completion/complete,
// resources/subscribe and unsubscribe. kind is the audit's (a prompt's for
// a completion of a prompt reference, a resource's for the rest).
func (g *Gateway) permit(srv *server, req mcp.Request, kind oauth.Kind, downstream, own string) error {
	if !visible(srv, req) {
		if kind == oauth.KindResource {
			return g.unknownResource(req, downstream)
		}
		return g.unknown(req, string(kind), downstream, "")
	}
	if kind == oauth.KindTool && !srv.Tools.Allows(own) {
		return g.unknown(req, "tool", downstream, srv.name)
	}
	if l := srv.sec.limiter; l != nil {
		if ok, retry := l.Allow(subjectKey(callerIdentity(req))); !ok {
			srv.sec.limited.add()
			retry = max(retry, time.Millisecond)
			return rpcError(CodeOverloaded, fmt.Sprintf("rate limited: this identity's calls to %s exceed the gateway's limit; nothing was sent, retry in %v", srv.name, retry.Round(time.Millisecond)),
				ErrorData{Server: srv.name, Reason: "rate_limited", RetryAfterMs: max(retry.Milliseconds(), 1)})
		}
	}
	return nil
}

// RateLimited returns how many calls to the named server the per-identity
// rate limit refused since the gateway started (0 for an unknown server).
func (g *Gateway) RateLimited(server string) int64 {
	if srv := g.set.Load().byName[server]; srv != nil {
		return srv.sec.limited.load()
	}
	return 0
}

// setSecurity copies a config file's policy settings of a server.
func setSecurity(s *Server, set config.GatewayServer) {
	s.Tools = ToolPolicy{Allow: set.Tools.Allow, Deny: set.Tools.Deny}
	s.Access = Access{Scopes: set.Access.Scopes, Subjects: set.Access.Subjects}
	if rl := set.RateLimit; rl != nil {
		s.RateLimit = &RateLimit{Rate: rl.Rate, Burst: rl.Burst}
	}
	if x := set.TokenExchange; x != nil {
		s.TokenExchange = &oauth.Exchanger{TokenURL: x.TokenURL, ClientID: x.ClientID, ClientSecret: x.ClientSecret, Audience: x.Audience, Scopes: x.Scopes}
	}
}
