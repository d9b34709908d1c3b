package mcpool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxToolName is the longest tool name the MCP spec (2025-11-25, "Tool
// names") allows; the group keeps prompt names to it as well.
const maxToolName = 128

// toolNameChar reports whether r may appear in a tool name (MCP spec
// 2025-11-25: A-Z a-z 0-9 _ - .).
func toolNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
}

// sanitizeName replaces every character a tool name may not hold with "_".
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if toolNameChar(r) {
			return r
		}
		return '_'
	}, s)
}

// qualify returns the group's name for a server's tool or prompt:
// prefix + separator + name. When that holds characters a tool name may
// not, or is longer than 128 characters, they are replaced by "_" and the
// name cut to fit, with "_" and 8 hex digits of its SHA-256 appended, so
// that two names that differ only there stay apart.
func (g *Group) qualify(prefix, name string) string {
	full := prefix + g.sep + name
	clean := sanitizeName(full)
	if clean == full && len(full) <= maxToolName {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	suffix := "_" + hex.EncodeToString(sum[:4])
	if len(clean) > maxToolName-len(suffix) {
		clean = clean[:maxToolName-len(suffix)]
	}
	return clean + suffix
}

// part is one server's share of a merged list: the group's copies of the
// items, renamed, made from the list the server's pool returned. Pools
// return the same slice while their cache holds, so the copies are remade
// only after that server's list changed.
type part[T any] struct {
	src   []*T
	built bool
	out   []*T
	orig  map[string]string // group name (or URI) → the server's name
	byKey map[string]*T     // group name (or URI) → the group's copy
	err   error             // the latest fetch's error; nil once one worked
}

func sameSlice[T any](a, b []*T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// listKind describes one of the three lists for the generic code below.
type listKind[T any] struct {
	kind  string // "tools", "prompts" or "resources"
	index int    // in Group.merged
	part  func(m *member) **part[T]
	fetch func(p *Pool, ctx context.Context) ([]*T, error)
	// rename returns the group's copy of item and its key in the group,
	// and the server's key.
	rename func(g *Group, m *member, item *T) (*T, string, string)
	// key is an item's name (or URI) in the group.
	key func(*T) string
}

var toolList = listKind[mcp.Tool]{
	kind:  "tools",
	index: 0,
	part:  func(m *member) **part[mcp.Tool] { return &m.tools },
	fetch: (*Pool).ListTools,
	rename: func(g *Group, m *member, t *mcp.Tool) (*mcp.Tool, string, string) {
		c := *t
		c.Name = g.qualify(m.prefix, t.Name)
		return &c, c.Name, t.Name
	},
	key: func(t *mcp.Tool) string { return t.Name },
}

var promptList = listKind[mcp.Prompt]{
	kind:  "prompts",
	index: 1,
	part:  func(m *member) **part[mcp.Prompt] { return &m.prompts },
	fetch: (*Pool).ListPrompts,
	rename: func(g *Group, m *member, pr *mcp.Prompt) (*mcp.Prompt, string, string) {
		c := *pr
		c.Name = g.qualify(m.prefix, pr.Name)
		return &c, c.Name, pr.Name
	},
	key: func(p *mcp.Prompt) string { return p.Name },
}

var resourceList = listKind[mcp.Resource]{
	kind:  "resources",
	index: 2,
	part:  func(m *member) **part[mcp.Resource] { return &m.resources },
	fetch: (*Pool).ListResources,
	rename: func(_ *Group, _ *member, r *mcp.Resource) (*mcp.Resource, string, string) {
		return r, r.URI, r.URI // URIs are global: kept as they are
	},
	key: func(r *mcp.Resource) string { return r.URI },
}

// memberList returns m's part of a list, fetched from one of its replicas
// (the pool's cache usually answers).
func memberList[T any](ctx context.Context, m *member, lk listKind[T]) (*part[T], error) {
	var items []*T
	err := m.list(ctx, func(ctx context.Context, p *Pool) error {
		var err error
		items, err = lk.fetch(p, ctx)
		return err
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	pp := lk.part(m)
	if err != nil {
		if *pp == nil {
			*pp = &part[T]{}
		}
		(*pp).err = err
		return nil, err
	}
	if pt := *pp; pt != nil && pt.built && sameSlice(pt.src, items) {
		pt.err = nil
		return pt, nil
	}
	// A new part rather than an update in place: callers may still hold
	// the previous one.
	np := &part[T]{src: items, built: true, out: make([]*T, 0, len(items)),
		orig: make(map[string]string, len(items)), byKey: make(map[string]*T, len(items))}
	for _, it := range items {
		c, key, orig := lk.rename(m.g, m, it)
		if _, dup := np.orig[key]; dup {
			continue
		}
		np.out = append(np.out, c)
		np.orig[key] = orig
		np.byKey[key] = c
	}
	*pp = np
	return np, nil
}

// mergedList fetches every server's part concurrently and merges them in
// configuration order. A server whose list fails is left out and logged,
// and its error kept for Stats; only when every server fails does the
// merged list fail, with a [*ListError].
func mergedList[T any](ctx context.Context, g *Group, lk listKind[T]) ([]*T, error) {
	parts := make([]*part[T], len(g.members))
	errs := make([]error, len(g.members))
	var wg sync.WaitGroup
	for i, m := range g.members {
		wg.Go(func() { parts[i], errs[i] = memberList(ctx, m, lk) })
	}
	wg.Wait()
	mc := &g.merged[lk.index]
	if slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		mc = nil // a list with servers left out is not cached
	} else {
		mc.mu.Lock()
		same := len(mc.parts) == len(parts)
		for i := 0; same && i < len(parts); i++ {
			same = mc.parts[i] == any(parts[i])
		}
		if same {
			out := mc.out.([]*T)
			mc.mu.Unlock()
			return out, nil
		}
		mc.mu.Unlock()
	}
	var out []*T
	seen := map[string]string{} // group name or URI → server
	var failed []*ServerError
	for i, m := range g.members {
		if errs[i] != nil {
			failed = append(failed, &ServerError{Server: m.name, Err: g.red.err(errs[i])})
			g.log.Warn("server left out of the merged list", "list", lk.kind, "server", m.name, "error", errs[i])
			continue
		}
		for _, it := range parts[i].out {
			key := lk.key(it)
			if other, dup := seen[key]; dup {
				g.log.Debug("listed by two servers: the first keeps it", "list", lk.kind, "name", key, "server", other, "also", m.name)
				continue
			}
			seen[key] = m.name
			out = append(out, it)
		}
	}
	if len(failed) == len(g.members) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, &ListError{Kind: lk.kind, Failed: failed}
	}
	if out == nil {
		out = []*T{}
	}
	if mc != nil {
		keys := make([]any, len(parts))
		for i, pt := range parts {
			keys[i] = pt
		}
		mc.mu.Lock()
		mc.parts, mc.out = keys, out
		mc.mu.Unlock()
	}
	return out, nil
}

// ListTools returns every server's tools, each named server + separator +
// tool ("github__create_issue"; see GroupConfig.Separator), in
// configuration order. Each server's list comes from its pool's catalog
// cache (see [Pool.ListTools]): a list_changed from one server refreshes
// that server's part only.
//
// A server whose list cannot be had (it is down, its breaker is open) is
// left out, logged at warning level and reported in [Group.Stats]
// (ServerStats.ListError); the others' tools are still returned. So is a
// server that has not answered when ctx ends: a slow server does not hold
// up the list (its fetch goes on in the background and fills its pool's
// cache). Only when every server fails is the result an error: ctx's when
// it ended, else a [*ListError] naming each server. The tools are shared:
// treat them as read-only.
func (g *Group) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	return mergedList(ctx, g, toolList)
}

// ListPrompts is ListTools for prompts, named server + separator + prompt.
func (g *Group) ListPrompts(ctx context.Context) ([]*mcp.Prompt, error) {
	return mergedList(ctx, g, promptList)
}

// ListResources is ListTools for resources, which keep their URIs: the
// group remembers which server listed each, for [Group.ReadResource]. When
// two servers list the same URI, the first in configuration order keeps it.
func (g *Group) ListResources(ctx context.Context) ([]*mcp.Resource, error) {
	return mergedList(ctx, g, resourceList)
}

// listChanged runs when a session of one of m's replicas received a
// list_changed. The pool has already emptied its cache, so the next list
// remakes m's part alone; the group only tells its user.
func (m *member) listChanged(kind string) {
	if m.g.onChanged != nil {
		m.g.onChanged(m.name, kind)
	}
}
