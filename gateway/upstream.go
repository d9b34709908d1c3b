package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// PoolUpstream returns p as an [Upstream].
func PoolUpstream(p *mcpool.Pool) Upstream { return poolUpstream{p} }

type poolUpstream struct{ *mcpool.Pool }

// GetPrompt implements Upstream.
func (u poolUpstream) GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	var res *mcp.GetPromptResult
	err := u.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		cp := *params // the SDK writes protocol metadata into params
		var err error
		res, err = cs.GetPrompt(ctx, &cp)
		return err
	})
	return res, err
}

// ReadResource implements Upstream.
func (u poolUpstream) ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	var res *mcp.ReadResourceResult
	err := u.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		cp := *params
		var err error
		res, err = cs.ReadResource(ctx, &cp)
		return err
	})
	return res, err
}

// ServerSettings are the gateway's settings for one server of a Group, from
// the "gateway" section of the config file (see [LoadSettings]).
type ServerSettings struct {
	Mode           Mode     `json:"mode"`
	ForwardHeaders []string `json:"forwardHeaders"`
	Spares         int      `json:"spares"` // negative: none (Server.Spares)
	MaxQueued      int      `json:"maxQueued"`
}

// GroupServers returns one [Server] per server of gc, in gc's order, with
// the gateway settings named in settings (a server missing there gets the
// defaults: ModeIsolated). g is the Group made from gc less its
// ModePassthrough servers (see [WithoutPassthrough]): those dial with each
// client's credentials through the gateway's own keyed pools, never with
// the gateway's, so the Group must not start pools for them; g may be nil
// when every server is in ModePassthrough. gc gives the separator and each
// server's Config, the template of the pools that ModeIsolated and
// ModePassthrough make (a server with replicas uses its first). Calls in
// ModeShared go through the Group, which balances them over the server's
// replicas and moves them when a replica dies; catalogs are read from the
// first replica that answers.
func GroupServers(g *mcpool.Group, gc *mcpool.GroupConfig, settings map[string]ServerSettings) []Server {
	sep := gc.Separator
	if sep == "" {
		sep = DefaultSeparator
	}
	inGroup := map[string]bool{}
	if g != nil {
		for _, name := range g.Servers() {
			inGroup[name] = true
		}
	}
	var out []Server
	for _, sc := range gc.Servers {
		name, cfg := sc.Name, sc.Config
		if len(sc.Replicas) > 0 {
			cfg = sc.Replicas[0]
		}
		set := settings[name]
		s := Server{Name: name, Mode: set.Mode, ForwardHeaders: set.ForwardHeaders, Spares: set.Spares, MaxQueued: set.MaxQueued, Config: cfg}
		if inGroup[name] {
			s.Upstream = groupUpstream{g: g, name: name, prefix: name + sep}
			s.Replicas = func() []ReplicaStats { return groupReplicas(g, name) }
		} else if set.Mode != ModePassthrough {
			continue // not served by g
		}
		out = append(out, s)
	}
	return out
}

// WithoutPassthrough returns a copy of gc without the servers that
// settings put in ModePassthrough: the config to make the Group from.
func WithoutPassthrough(gc *mcpool.GroupConfig, settings map[string]ServerSettings) *mcpool.GroupConfig {
	out := *gc
	out.Servers = nil
	for _, sc := range gc.Servers {
		if settings[sc.Name].Mode != ModePassthrough {
			out.Servers = append(out.Servers, sc)
		}
	}
	return &out
}

// groupUpstream is one server of a Group.
type groupUpstream struct {
	g      *mcpool.Group
	name   string
	prefix string
}

// list reads a list from the first replica that answers.
func list[T any](ctx context.Context, u groupUpstream, fn func(*mcpool.Pool, context.Context) ([]*T, error)) ([]*T, error) {
	var errs []error
	for _, p := range u.g.Replicas(u.name) {
		items, err := fn(p, ctx)
		if err == nil {
			return items, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// ListTools implements Upstream.
func (u groupUpstream) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	return list(ctx, u, (*mcpool.Pool).ListTools)
}

// ListPrompts implements Upstream.
func (u groupUpstream) ListPrompts(ctx context.Context) ([]*mcp.Prompt, error) {
	return list(ctx, u, (*mcpool.Pool).ListPrompts)
}

// ListResources implements Upstream.
func (u groupUpstream) ListResources(ctx context.Context) ([]*mcp.Resource, error) {
	return list(ctx, u, (*mcpool.Pool).ListResources)
}

// CallTool implements Upstream.
func (u groupUpstream) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	cp := *params
	cp.Name = u.prefix + params.Name
	return u.g.CallTool(ctx, &cp)
}

// GetPrompt implements Upstream.
func (u groupUpstream) GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	cp := *params
	cp.Name = u.prefix + params.Name
	return u.g.GetPrompt(ctx, &cp)
}

// ReadResource implements Upstream.
func (u groupUpstream) ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	return u.g.ReadResource(ctx, params)
}

// Stats sums the server's replicas (mcpool.SumStats), with the Group's
// status for the server and a breaker summary naming every replica's.
func (u groupUpstream) Stats() mcpool.Stats {
	var st mcpool.Stats
	for _, s := range u.g.Stats().Servers {
		if s.Name != u.name {
			continue
		}
		all := make([]mcpool.Stats, len(s.Replicas))
		breakers := map[string]int{}
		for i, r := range s.Replicas {
			all[i] = r.Pool
			breakers[r.Pool.Breaker]++
			if r.Pool.Store != "" && st.Store != "failing" {
				st.Store = r.Pool.Store
			}
		}
		store := st.Store
		st = mcpool.SumStats(all...)
		st.Status, st.Store = s.Status, store
		var parts []string
		for _, b := range []string{"closed", "half-open", "open", "disabled"} {
			if n := breakers[b]; n > 0 {
				if len(s.Replicas) == 1 {
					parts = append(parts, b)
				} else {
					parts = append(parts, itoa(n)+" "+b)
				}
			}
		}
		st.Breaker = strings.Join(parts, ", ")
	}
	return st
}

func groupReplicas(g *mcpool.Group, name string) []ReplicaStats {
	for _, s := range g.Stats().Servers {
		if s.Name != name || len(s.Replicas) < 2 {
			continue
		}
		out := make([]ReplicaStats, len(s.Replicas))
		for i, r := range s.Replicas {
			out[i] = ReplicaStats{Name: r.Target, Stats: r.Pool}
		}
		return out
	}
	return nil
}
