package mcpool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// maxToolName is the longest tool name the MCP spec (2025-11-25, "Tool
// names") allows; the group keeps prompt names to it as well.
const maxToolName = 128

// maxPrefix is the longest server part of a name: a longer server name is
// cut, with a hash, so that the server part always survives whole when a
// name is cut to maxToolName.
const maxPrefix = 64

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

// hash8 is "_" and the first 8 hex digits of s's SHA-256.
func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "_" + hex.EncodeToString(sum[:4])
}

// Naming is the rule by which a [Group] names its servers' tools and
// prompts, and finds the server and the server's own name again from a
// name. Make it with [GroupConfig.Naming] (or get a Group's with
// [Group.Naming]); it serves for servers that are not members of a Group
// too (a gateway's servers that dial with each client's credentials): any
// two callers that make a Naming from the same servers, Separator and
// Unprefixed give the same names. Resource URIs are not renamed.
//
// The rule: a name is the server's part, the separator and the server's
// own name ("github" and "create_issue" give "github__create_issue"), or,
// with GroupConfig.Unprefixed, the server's own name alone. The server's
// part is the server's name with each run of characters a tool name may
// not hold (MCP spec 2025-11-25, "Tool names": A-Z a-z 0-9 _ - .) replaced
// by one "_" ("my server" gives "my_server", "Acme.Docs" stays as it is);
// when that leaves no letter or digit (a name all in other scripts: "ü"),
// the part is 8 hex digits of the name's SHA-256 ("607474ca"), and when it
// is longer than 64 characters, it is cut to fit and "_" and those 8 hex
// digits are appended. When the whole name then holds other
// characters, or is longer than 128, they are replaced by "_", and it is cut
// to 119 characters with "_" and 8 hex digits of its SHA-256 appended, so
// that two names that differ only there stay apart. Every name is thus 1 to
// 128 characters of A-Z a-z 0-9 _ - ., and starts with its server's part
// whole.
//
// A Naming is immutable and safe for concurrent use.
type Naming struct {
	sep        string
	unprefixed bool
	servers    []string          // in configuration order
	prefix     map[string]string // server → its part of names
	byPrefix   map[string]string // server part → server
}

// Naming validates the names of cfg's servers, its Separator and
// Unprefixed, and returns the rule by which a Group made from cfg names
// their tools and prompts. [NewGroup] applies it; call it to name servers
// that are not in a Group by the same rule, or to check a config. Errors are
// [*ConfigError] values (errors.Is ErrInvalidConfig): a server with no name
// or a name used twice; two servers whose parts of names would be the same
// ("my server" and "my_server"), naming both; a server name that holds the
// separator; a Separator with characters a tool name may not hold or longer
// than 8; Unprefixed with other than exactly one server.
func (cfg *GroupConfig) Naming() (*Naming, error) {
	n := &Naming{sep: cfg.Separator, unprefixed: cfg.Unprefixed, prefix: map[string]string{}, byPrefix: map[string]string{}}
	if n.sep == "" {
		n.sep = DefaultSeparator
	}
	if strings.IndexFunc(n.sep, func(r rune) bool { return !toolNameChar(r) }) >= 0 || len(n.sep) > 8 {
		return nil, configErr("Separator", fmt.Sprintf("%q may hold only A-Z a-z 0-9 _ - . and at most 8 of them", n.sep))
	}
	if len(cfg.Servers) == 0 {
		return nil, configErr("Servers", "is empty: name at least one server")
	}
	if n.unprefixed && len(cfg.Servers) != 1 {
		return nil, configErr("Unprefixed", fmt.Sprintf("needs exactly one server, not %d: with several, names are told apart by their server's part", len(cfg.Servers)))
	}
	for _, sc := range cfg.Servers {
		field := fmt.Sprintf("Servers[%q].Name", sc.Name)
		if sc.Name == "" {
			return nil, configErr("Servers", "has a server with no Name")
		}
		if _, dup := n.prefix[sc.Name]; dup {
			return nil, configErr(field, "is used twice")
		}
		p := serverPart(sc.Name)
		if !n.unprefixed && strings.Contains(p, n.sep) {
			how := "contains"
			if p != sc.Name {
				how = fmt.Sprintf("becomes %q in names, which contains", p)
			}
			return nil, configErr(field, fmt.Sprintf("%s the separator %q: names could not be told apart; rename the server or choose another Separator", how, n.sep))
		}
		if other, dup := n.byPrefix[p]; dup {
			return nil, configErr(field, fmt.Sprintf("becomes %q in tool and prompt names, as server %q does: rename one of them", p, other))
		}
		if !n.unprefixed {
			for q, other := range n.byPrefix {
				if strings.HasPrefix(p+n.sep, q+n.sep) || strings.HasPrefix(q+n.sep, p+n.sep) {
					return nil, configErr(field, fmt.Sprintf("becomes %q in tool and prompt names, and server %q becomes %q: names of one could be read as the other's; rename one of them", p, other, q))
				}
			}
		}
		n.servers = append(n.servers, sc.Name)
		n.prefix[sc.Name] = p
		n.byPrefix[p] = sc.Name
	}
	return n, nil
}

// serverPart is a server's part of names (see Naming).
func serverPart(name string) string {
	var b strings.Builder
	alnum, replaced := false, false
	for _, r := range name {
		switch {
		case toolNameChar(r):
			b.WriteRune(r)
			replaced = false
			alnum = alnum || r != '_' && r != '-' && r != '.'
		case !replaced:
			b.WriteByte('_')
			replaced = true
		}
	}
	p := b.String()
	if alnum && len(p) <= maxPrefix {
		return p
	}
	// Cut, and without "_" at the end, so that "_" and the hash cannot
	// make a run that the separator may be.
	p = strings.TrimRight(p[:min(len(p), maxPrefix-9)], "_")
	if !alnum || p == "" {
		return hash8(name)[1:]
	}
	return p + hash8(name)
}

// Servers returns the names of the servers the rule names, in
// configuration order.
func (n *Naming) Servers() []string { return slices.Clone(n.servers) }

// Separator returns the separator between a server's part and its own name.
func (n *Naming) Separator() string { return n.sep }

// Name returns the name of the named server's tool or prompt called name
// ("github" and "create_issue" give "github__create_issue"), and false if
// the rule does not know the server. It does not check that the server has
// that tool.
func (n *Naming) Name(server, name string) (string, bool) {
	p, ok := n.prefix[server]
	if !ok {
		return "", false
	}
	return n.qualify(p, name), true
}

// Route returns the server whose tool or prompt is called name: the one
// whose part name starts with (with Unprefixed, the one server), and the
// rest of name after that part and the separator (with Unprefixed, name).
// The rest is the server's own name unless the rule changed it (characters
// replaced, or a name cut and hashed): to find the server's own name then,
// compare Name(server, own) for each name the server lists, as
// [Group.ResolveTool] does. ok is false when name starts with no server's
// part.
func (n *Naming) Route(name string) (server, rest string, ok bool) {
	if n.unprefixed {
		return n.servers[0], name, true
	}
	for i := 0; ; {
		j := strings.Index(name[i:], n.sep)
		if j < 0 {
			return "", "", false
		}
		i += j
		if s, ok := n.byPrefix[name[:i]]; ok && i > 0 {
			return s, name[i+len(n.sep):], true
		}
		i++
	}
}

// qualify returns the name of a tool or prompt called name of the server
// whose part is prefix (see Naming).
func (n *Naming) qualify(prefix, name string) string {
	full := name
	if !n.unprefixed {
		full = prefix + n.sep + name
	}
	clean := sanitizeName(full)
	if clean == full && len(full) <= maxToolName && full != "" {
		return full
	}
	suffix := hash8(full)
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
		c.Name = m.naming.qualify(m.prefix, t.Name)
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
		c.Name = m.naming.qualify(m.prefix, pr.Name)
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
	members := g.state().members
	parts := make([]*part[T], len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
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
	for i, m := range members {
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
	if len(failed) == len(members) {
		// A server's error other than the bare ctx error says more: a
		// failure of its own, or what its connects met until ctx ended.
		if err := ctx.Err(); err != nil && !slices.ContainsFunc(errs, func(e error) bool { return e != err }) {
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

// ListTools returns every server's tools, each named by the group's
// [Naming] ("github__create_issue"), in
// configuration order. Each server's list comes from its pool's catalog
// cache (see [Pool.ListTools]): a list_changed from one server refreshes
// that server's part only.
//
// A server whose list cannot be had (it is down, its breaker is open) is
// left out, logged at warning level and reported in [Group.Stats]
// (ServerStats.ListError); the others' tools are still returned. So is a
// server that has not answered when ctx ends: a slow server does not hold
// up the list (its fetch goes on in the background and fills its pool's
// cache). Only when every server fails is the result an error: a
// [*ListError] naming each server and why (a server whose connects kept
// failing until ctx ended: a [*ConnectError] with the last failure, which
// matches ctx's error), or ctx's error alone when it ended before any
// server had more to say. The tools are shared: treat them as read-only.
func (g *Group) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	return mergedList(ctx, g, toolList)
}

// ListPrompts is ListTools for prompts, named by the same rule.
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

// ServerTemplates is one server's resource templates (MCP spec 2025-11-25,
// "Resource Templates"), under the server's own URI templates: URIs are
// not renamed.
type ServerTemplates struct {
	Server    string
	Templates []*mcp.ResourceTemplate
}

// AmbiguousResourceError says that several servers' resource templates
// match a URI that no server lists: the group cannot tell which server to
// read it from. Read it from one of them with [Group.Server].
type AmbiguousResourceError struct {
	URI     string
	Servers []string // the servers whose templates match, in configuration order
}

// Error names the URI and the candidates.
func (e *AmbiguousResourceError) Error() string {
	return fmt.Sprintf("mcpool: resource %q matches the resource templates of several servers (%s): read it from one of them by server", e.URI, strings.Join(e.Servers, ", "))
}

// TemplateServer returns the server, among lists (in configuration
// order), whose resource template matches uri (RFC 6570 level 1–4
// matching, as the go-sdk's server matches them). It returns a
// [*NotFoundError] (Kind "resource", Known: the templates) when none
// matches and an [*AmbiguousResourceError] when templates of more than one
// server match; several templates of one server are not ambiguous. The
// Group's ReadResource and the gateway route template reads with it.
func TemplateServer(lists []ServerTemplates, uri string) (string, error) {
	var match, known []string
	for _, l := range lists {
		for _, t := range l.Templates {
			if t == nil {
				continue
			}
			known = append(known, t.URITemplate)
			tm, err := uritemplate.New(t.URITemplate)
			if err != nil || !tm.Regexp().MatchString(uri) {
				continue
			}
			if !slices.Contains(match, l.Server) {
				match = append(match, l.Server)
			}
		}
	}
	switch len(match) {
	case 0:
		return "", &NotFoundError{Kind: "resource", Name: uri, Known: known}
	case 1:
		return match[0], nil
	}
	return "", &AmbiguousResourceError{URI: uri, Servers: match}
}

// ListResourceTemplates returns every server's resource templates, in
// configuration order, fetched afresh from the first replica of each
// server that answers (templates are not cached). Servers that fail are
// left out and reported as a [*ListError] only when all fail; a server
// without resources answers with none.
func (g *Group) ListResourceTemplates(ctx context.Context) ([]ServerTemplates, error) {
	members := g.state().members
	out := make([]ServerTemplates, 0, len(members))
	var failed []*ServerError
	for _, m := range members {
		ts, err := m.handle.ListResourceTemplates(ctx)
		if err != nil {
			failed = append(failed, &ServerError{Server: m.name, Err: err})
			continue
		}
		out = append(out, ServerTemplates{Server: m.name, Templates: ts})
	}
	if len(out) == 0 && len(failed) > 0 {
		return nil, &ListError{Kind: "resource templates", Failed: failed}
	}
	return out, nil
}

// ResourceTemplateServer returns the server whose resource template
// matches uri, listing the templates afresh: see [TemplateServer] for the
// errors.
func (g *Group) ResourceTemplateServer(ctx context.Context, uri string) (string, error) {
	lists, err := g.ListResourceTemplates(ctx)
	if err != nil {
		return "", err
	}
	return TemplateServer(lists, uri)
}
