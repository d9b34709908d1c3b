package gateway

import (
	"context"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
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

// GroupServers returns one [Server] per server of gc, in gc's order, with
// the gateway settings named in settings (the config file's
// gateway.servers, [config.Gateway]; a server missing there gets the
// defaults: ModeIsolated). g is the Group made from gc less its
// ModePassthrough servers (see [WithoutPassthrough]): those dial with each
// client's credentials through the gateway's own keyed pools, never with
// the gateway's, so the Group must not start pools for them; g may be nil
// when every server is in ModePassthrough. gc gives each server's Config,
// the template of the pools that ModeIsolated and ModePassthrough make (a
// server with replicas uses its first). Each server of g is served through
// [mcpool.Group.Server]: calls in ModeShared take the Group's path, which
// balances them over the server's replicas and moves them when a replica
// dies; catalogs are read from the first replica that answers. Name them
// all with gc's Naming (Options.Naming), passthrough servers included.
func GroupServers(g *mcpool.Group, gc *mcpool.GroupConfig, settings map[string]config.GatewayServer) []Server {
	var out []Server
	for _, sc := range gc.Servers {
		name, cfg := sc.Name, sc.Config
		if len(sc.Replicas) > 0 {
			cfg = sc.Replicas[0]
		}
		set := settings[name]
		s := Server{Name: name, Mode: Mode(set.Mode), ForwardHeaders: set.ForwardHeaders, Spares: set.Spares, MaxQueued: set.MaxQueued, Config: cfg}
		setSecurity(&s, set) // policy.go
		var gs *mcpool.GroupServer
		if g != nil {
			gs = g.Server(name)
		}
		if gs != nil {
			s.Upstream = gs
			s.Replicas = func() []ReplicaStats { return replicaStats(gs) }
		} else if Mode(set.Mode) != ModePassthrough {
			continue // not served by g
		}
		out = append(out, s)
	}
	return out
}

// WithoutPassthrough returns a copy of gc without the servers that
// settings put in ModePassthrough: the config to make the Group from.
func WithoutPassthrough(gc *mcpool.GroupConfig, settings map[string]config.GatewayServer) *mcpool.GroupConfig {
	out := *gc
	out.Servers = nil
	for _, sc := range gc.Servers {
		if Mode(settings[sc.Name].Mode) != ModePassthrough {
			out.Servers = append(out.Servers, sc)
		}
	}
	return &out
}

// replicaStats is the status page's rows of a server with several
// replicas; nil for one.
func replicaStats(gs *mcpool.GroupServer) []ReplicaStats {
	ss := gs.ServerStats()
	if len(ss.Replicas) < 2 {
		return nil
	}
	out := make([]ReplicaStats, len(ss.Replicas))
	for i, r := range ss.Replicas {
		out[i] = ReplicaStats{Name: r.Target, Stats: r.Pool}
	}
	return out
}
