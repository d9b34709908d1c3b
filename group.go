package mcpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mcpool/mcpool/internal/drain"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultSeparator joins a server's name and a tool's or prompt's name in a
// [Group]'s merged catalog: "github__create_issue". It is the form most MCP
// aggregators use (docker/mcp-gateway, envoy ai-gateway, MetaMCP).
const DefaultSeparator = "__"

// Group is a set of MCP servers used as one: one [Pool] per server (or per
// replica of a server), started together and closed together. Its tool and
// prompt catalogs merge every server's, each named by the group's [Naming]
// ("server__tool"; always a valid tool name, whatever the server's name or
// its tools' names hold); resources keep their URIs and the group remembers
// which server listed each. [Group.CallTool], [Group.GetPrompt] and
// [Group.ReadResource] route by those names; [Group.Server] serves one
// server under its own names.
//
// A server may have several replicas, each its own Pool; calls go to one of
// them as ServerConfig.Balance says, and a call whose replica dies under it
// moves to another replica when that is safe (see [Group.CallTool]).
//
// Build a Group from a config file with package
// [github.com/mcpool/mcpool/config] and [NewGroup], or from ServerConfig
// values made in code. All methods are safe for
// concurrent use.
type Group struct {
	log       *slog.Logger // redacting: see redactor
	red       *redactor
	onChanged func(server, kind string)

	// st is the group's servers and their naming: replaced whole by
	// Update, never changed, so that a call routes on one snapshot.
	st atomic.Pointer[groupState]

	// update serializes Updates; it is held across their connects, mu
	// never is.
	update sync.Mutex

	mu       sync.Mutex           // guards what follows, and the swap of st
	retired  map[*member]struct{} // left the group, pools not closed yet
	starting map[*member]struct{} // an Update's new servers, connecting
	closed   bool

	// merged caches each merged list with the parts it was made from, so
	// that a List call whose parts are all unchanged allocates nothing.
	merged [3]mergedCache
}

type mergedCache struct {
	mu    sync.Mutex
	parts []any // the *part[T] of each server
	out   any   // []*T
}

// GroupConfig describes a [Group].
type GroupConfig struct {
	// Servers are the group's servers, in the order catalogs are merged.
	// Names must be unique.
	Servers []ServerConfig
	// Separator joins a server's part and a tool's or prompt's name (see
	// [Naming]). Empty means DefaultSeparator ("__"). It may hold only the
	// characters the MCP spec (2025-11-25, "Tool names") allows in a tool
	// name, A-Z a-z 0-9 _ - and ., at most 8 of them, and no server name
	// may contain it: "__" (the default), "_" (agentgateway) and "-"
	// (LiteLLM) are the common choices.
	Separator string
	// Unprefixed names the tools and prompts of the group's one server by
	// their own names, with no server part (characters a tool name may not
	// hold are still replaced; see [Naming]), so that the group, or a
	// gateway in front of it, can stand in for that server where clients
	// call fixed names. It needs exactly one server: NewGroup returns an
	// error otherwise.
	Unprefixed bool
	// OnListChanged, if set, is called with the server's name and the list
	// ("tools", "prompts" or "resources") when a session of that server
	// receives a list_changed notification. The group has already dropped
	// its copy of that server's part of the list: the next List call fetches
	// it; the other servers' parts are untouched. A gateway forwards the
	// notification to its own clients from here. It runs on the SDK's
	// notification goroutine: keep it quick.
	OnListChanged func(server, kind string)
	// Logger receives the group's events (servers left out of a merged
	// list, calls moved to another replica) and, for servers whose Config
	// has no Logger, their pools' events, with a "server" attribute. Nil
	// means slog.Default().
	Logger *slog.Logger
}

// ServerConfig is one server of a [Group]. New fields may be added: build
// it with field names.
type ServerConfig struct {
	// Name identifies the server in the group, in tool and prompt names,
	// in errors and in Stats. It must be non-empty and must not contain the
	// group's separator. Characters a tool name may not hold (MCP spec
	// 2025-11-25, "Tool names") are replaced by "_" in tool and prompt
	// names, and a name longer than 64 is cut (see [Naming]): two servers
	// whose names become the same there are an error.
	Name string
	// Config is the server's pool: where the server is, and the pool's
	// settings. It is used when Replicas is empty.
	Config Config
	// Replicas, if not empty, are the server's replicas, one Pool each:
	// copies of the same server at other URLs (or, for a stdio server,
	// separate sets of processes). Config is then ignored. Replicas must
	// serve the same tools: the catalog is read from whichever replica is
	// chosen.
	Replicas []Config
	// Balance chooses a replica for each call. The zero value is
	// LeastLoaded.
	Balance Balance
	// Auth holds the credentials a config file gives the server
	// (mcpool.servers.NAME.auth); nil when it gives none. The config
	// package has already put a Token into each Config's BearerToken; OAuth
	// needs a handler the caller makes (see [ServerAuth]).
	Auth *ServerAuth
}

// Balance is how a [Group] spreads a server's calls over its replicas. A
// replica whose circuit breaker is open, or that has no live session (every
// session dead, or suspect and waiting for a health check), takes no calls
// while another replica can; when none can, the group tries them anyway so
// that the caller gets the replica's own error.
type Balance int

// The balancing policies.
const (
	// LeastLoaded sends each call to the replica with the fewest calls in
	// flight from this group; ties go round-robin.
	LeastLoaded Balance = iota
	// RoundRobin sends calls to the replicas in turn.
	RoundRobin
	// Failover sends every call to the first replica that can take it, in
	// configuration order: the next only when the ones before are
	// unavailable.
	Failover
)

// String returns the policy's name in config files: "least-loaded",
// "round-robin" or "failover".
func (b Balance) String() string {
	switch b {
	case LeastLoaded:
		return "least-loaded"
	case RoundRobin:
		return "round-robin"
	case Failover:
		return "failover"
	}
	return fmt.Sprintf("Balance(%d)", int(b))
}

// ParseBalance returns the policy named s, as Balance.String spells it.
func ParseBalance(s string) (Balance, error) {
	for _, b := range []Balance{LeastLoaded, RoundRobin, Failover} {
		if s == b.String() {
			return b, nil
		}
	}
	return 0, fmt.Errorf("unknown balance %q (want least-loaded, round-robin or failover)", s)
}

// NewGroup validates cfg (see [GroupConfig.Validate]) and makes one Pool per
// server replica. Like [New]
// it does no I/O: call [Group.Start] to connect, and [Group.Close] when
// done. Errors are [*ConfigError] values (errors.Is ErrInvalidConfig)
// whose Field names the server, such as `Servers["github"].MaxSessions`.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	naming, _ := cfg.Naming() // checked by Validate
	g := &Group{
		log:       cfg.Logger,
		onChanged: cfg.OnListChanged,
		retired:   map[*member]struct{}{},
		starting:  map[*member]struct{}{},
	}
	st := &groupState{naming: naming, byName: map[string]*member{}}
	if g.log == nil {
		g.log = slog.Default()
	}
	var all []Config
	for _, sc := range cfg.Servers {
		all = append(append(all, sc.Config), sc.Replicas...)
	}
	g.red = newRedactor(all)
	g.log = slog.New(g.red.handler(g.log.Handler()))
	for _, sc := range cfg.Servers {
		m, err := g.newMember(sc, naming)
		if err != nil {
			for _, m := range st.members {
				m.closePools()
			}
			return nil, err
		}
		st.members = append(st.members, m)
		st.byName[m.name] = m
	}
	g.st.Store(st)
	return g, nil
}

// groupState is a Group's servers, in configuration order, and its naming.
type groupState struct {
	naming  *Naming
	members []*member
	byName  map[string]*member
}

func (g *Group) state() *groupState { return g.st.Load() }

func (g *Group) newMember(sc ServerConfig, naming *Naming) (*member, error) {
	// cfg.Validate has checked the names, the separator and each Config.
	field := fmt.Sprintf("Servers[%q]", sc.Name)
	m := &member{g: g, name: sc.Name, naming: naming, prefix: naming.prefix[sc.Name], balance: sc.Balance, sc: sc, subTurn: make(chan struct{}, 1)}
	m.handle = &GroupServer{m: m}
	configs := sc.Replicas
	if len(configs) == 0 {
		configs = []Config{sc.Config}
	}
	for i, cfg := range configs {
		if cfg.Logger == nil {
			cfg.Logger = g.log.With("server", sc.Name)
			if len(configs) > 1 {
				cfg.Logger = cfg.Logger.With("replica", i)
			}
		} else {
			cfg.Logger = slog.New(g.red.handler(cfg.Logger.Handler()))
		}
		userHook := cfg.OnListChanged
		cfg.OnListChanged = func(kind string) {
			m.listChanged(kind)
			if userHook != nil {
				userHook(kind)
			}
		}
		p, err := New(cfg)
		if err != nil {
			m.closePools()
			var ce *ConfigError
			if errors.As(err, &ce) {
				f := field + "."
				if len(sc.Replicas) > 0 {
					f = fmt.Sprintf("%s.Replicas[%d].", field, i)
				}
				return nil, configErr(f+ce.Field, ce.Reason)
			}
			return nil, err
		}
		m.replicas = append(m.replicas, &replica{pool: p, target: p.dialer.target})
	}
	return m, nil
}

// Servers returns the names of the group's servers in configuration order.
func (g *Group) Servers() []string {
	members := g.state().members
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.name
	}
	return names
}

// Pool returns the pool of the named server (its first replica's when it
// has several; see [Group.Replicas]), or nil if the group has no such
// server. The pool belongs to the group: do not Close it.
func (g *Group) Pool(server string) *Pool {
	m := g.state().byName[server]
	if m == nil {
		return nil
	}
	return m.replicas[0].pool
}

// Replicas returns the pools of the named server's replicas in
// configuration order (one for a server without replicas), or nil if the
// group has no such server. The pools belong to the group: do not Close
// them.
func (g *Group) Replicas(server string) []*Pool {
	m := g.state().byName[server]
	if m == nil {
		return nil
	}
	pools := make([]*Pool, len(m.replicas))
	for i, r := range m.replicas {
		pools[i] = r.pool
	}
	return pools
}

// Start starts every pool of every server concurrently, as [Pool.Start]
// does, and waits for them. A server counts as started when one of its
// replicas is: Start then stops waiting for that server's replicas whose
// connects are failing, which go on connecting in the background with
// backoff (a dead replica does not hold Start up until its breaker opens
// or ctx ends). It returns nil when
// every server started; otherwise a [*ServerError] per server that did not
// (joined with errors.Join), while the servers that did start are ready for
// calls and those that did not go on connecting in the background with
// backoff. A server none of whose replicas starts fails as Pool.Start
// does: at once for a permanent failure, when its breaker opens, or when
// ctx ends. ctx bounds the wait.
func (g *Group) Start(ctx context.Context) error {
	return g.startMembers(ctx, g.state().members, true)
}

// startMembers starts members as Start describes. With rideOut false
// (Update) a replica whose connects fail is not waited for even when no
// other has started: the group is serving, and one server down must not
// hold back the rest of the update until its breaker opens.
func (g *Group) startMembers(ctx context.Context, members []*member, rideOut bool) error {
	type result struct {
		m   *member
		err error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	for _, m := range members {
		// Once one replica has started (rideOut; without it, at once), a
		// replica whose connects fail is no longer waited for (its
		// connects, on its pool's own context, go on); replicas still
		// connecting normally are.
		up := make(chan struct{})
		var upOnce sync.Once
		for _, r := range m.replicas {
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			wg.Go(func() {
				err := r.pool.Start(rctx)
				if err == nil {
					upOnce.Do(func() { close(up) })
				} else if errors.Is(err, context.Canceled) && rctx.Err() != nil && ctx.Err() == nil {
					// Stopped below, not by the caller: the failure,
					// not the cancellation, is what to report.
					err = r.pool.failingError()
				}
				results <- result{m, err}
			})
			go func() {
				if !rideOut {
					r.pool.waitFailing(rctx)
					cancel()
					return
				}
				select {
				case <-up:
					r.pool.waitFailing(rctx)
					cancel()
				case <-rctx.Done():
				}
			}()
		}
	}
	go func() { wg.Wait(); close(results) }()
	started := map[*member]bool{}
	failed := map[*member]error{}
	for r := range results {
		if r.err == nil {
			started[r.m] = true
		} else if failed[r.m] == nil {
			failed[r.m] = r.err
		}
	}
	var errs []error
	for _, m := range members {
		if !started[m] {
			errs = append(errs, &ServerError{Server: m.name, Err: g.red.err(failed[m])})
		}
	}
	return errors.Join(errs...)
}

// Close closes every pool concurrently, as [Pool.Close] does, and returns
// their errors joined, each wrapped in a [*ServerError]. Like Pool.Close it
// returns by ctx's deadline (with errors matching ErrCloseIncomplete for
// the pools still closing) and is idempotent and safe from many
// goroutines: every call waits, as long as its own ctx allows, for the
// same teardown. To wait for a teardown that an earlier Close left
// running, call Close again with a longer ctx. Close does not wait for an
// [Group.Update] under way: the servers it is connecting are closed with
// the rest (those it makes after Close began, by the Update itself before
// it returns ErrPoolClosed).
func (g *Group) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	members := slices.Clone(g.state().members)
	for m := range g.retired {
		members = append(members, m)
	}
	for m := range g.starting {
		members = append(members, m)
	}
	g.mu.Unlock()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range members {
		for _, r := range m.replicas {
			wg.Go(func() {
				if err := r.pool.Close(ctx); err != nil {
					mu.Lock()
					errs = append(errs, &ServerError{Server: m.name, Err: g.red.err(err)})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *member) closePools() {
	for _, r := range m.replicas {
		_ = r.pool.Close(context.Background())
	}
}

// member is one server of a group.
type member struct {
	g        *Group
	name     string
	sc       ServerConfig // as configured, for Update's comparison
	handle   *GroupServer // the one handle Group.Server returns
	naming   *Naming      // the group's when the member was made
	prefix   string       // the server's part of names (see Naming)
	balance  Balance
	replicas []*replica
	next     atomic.Uint64 // round-robin position (see pick)

	// Calls routed to the member: Enter before a call (false once an
	// Update's Close drains it: the call must route again), Exit after.
	calls drain.Counter

	// The server's parts of the merged lists: replaced, never changed,
	// when the server's list changes. mu guards the pointers and the
	// parts' err fields.
	mu        sync.Mutex
	tools     *part[mcp.Tool]
	prompts   *part[mcp.Prompt]
	resources *part[mcp.Resource]

	// subs maps each URI subscribed through GroupServer.Subscribe to the
	// replica pool that took it, so that Unsubscribe goes there. subTurn,
	// a one-slot semaphore taken within the caller's ctx, guards it and
	// orders a server's subscribes and unsubscribes one at a time (they
	// are rare, and an unsubscribe must not pass the subscribe it undoes).
	subTurn chan struct{}
	subs    map[string]*Pool
}

// Name returns the group's name for the tool or prompt that the named
// server calls name ("github" and "create_issue" give
// "github__create_issue"), and false if the group has no such server. It
// does not check that the server has that tool. It is Naming().Name.
func (g *Group) Name(server, name string) (string, bool) {
	return g.state().naming.Name(server, name)
}

// Naming returns the rule by which the group names its servers' tools and
// prompts (see [Naming]).
func (g *Group) Naming() *Naming { return g.state().naming }

// Update changes the group's servers to cfg's while calls go on: servers
// that cfg adds are made and started (as [Group.Start] starts them, within
// ctx), servers whose ServerConfig differs are replaced by new ones made
// and started the same way, and servers that cfg leaves out leave the
// group. Then the group switches to cfg at once: calls by name from then
// on go to the new set, and the merged lists are cfg's servers'. Servers
// whose ServerConfig is the same (function fields compare by whether they
// are set) keep their pools, sessions and catalogs. cfg's Separator and
// Unprefixed apply to every server; a server whose part of names they
// change is replaced. cfg's Logger and OnListChanged are not used: the
// group keeps the ones it was made with.
//
// The pools of the servers removed or replaced are not closed by Update:
// they finish the calls already routed to them (through a [GroupServer]
// taken before, too) and are closed, draining their calls in flight, by
// [GroupUpdate.Close], or by [Group.Close]. A call through a GroupServer
// of a replaced server made after that goes to its replacement; of a
// removed one, it fails with ErrPoolClosed.
//
// Errors: cfg's validation error ([*ConfigError], as NewGroup's: two
// servers whose names collide, say), with the group unchanged and no
// update; ErrPoolClosed after Close, and when Close comes while Update
// connects the new servers (Close does not wait for those connects: it
// closes the new servers' pools with the rest). When some added or
// replaced servers did not start, Update still switches to cfg (they go
// on connecting in the background) and returns the update with their
// [*ServerError]s joined, as Start does. Unlike Start, Update does not ride out a server whose
// connects fail: it stops waiting for a server once each of its replicas
// is failing ([Stats.Failing]: no session, its last connect failed), and
// reports it with a [*ConnectError] (errors.Is ErrConnectFailed) that wraps
// the last failure; a server that is down would otherwise hold the whole
// update, and every change in it, until its breaker opened (10 s by
// default). Updates are serialized; Update is safe to call while calls
// are under way.
func (g *Group) Update(ctx context.Context, cfg GroupConfig) (*GroupUpdate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	naming, _ := cfg.Naming() // checked by Validate
	g.update.Lock()
	defer g.update.Unlock()
	g.mu.Lock()
	closedAtStart := g.closed
	g.mu.Unlock()
	if closedAtStart {
		return nil, ErrPoolClosed
	}
	var all []Config
	for _, sc := range cfg.Servers {
		all = append(append(all, sc.Config), sc.Replicas...)
	}
	g.red.add(all)
	old := g.state()
	next := &groupState{naming: naming, byName: map[string]*member{}}
	u := &GroupUpdate{g: g}
	var fresh []*member
	for _, sc := range cfg.Servers {
		m := old.byName[sc.Name]
		// A member's lists are named by its naming: one whose names would
		// change is replaced.
		if m == nil || m.prefix != naming.prefix[sc.Name] || m.naming.sep != naming.sep || m.naming.unprefixed != naming.unprefixed || !sameServer(m.sc, sc) {
			nm, err := g.newMember(sc, naming)
			if err != nil {
				for _, f := range fresh {
					f.closePools()
				}
				return nil, err
			}
			fresh = append(fresh, nm)
			if m == nil {
				u.Added = append(u.Added, sc.Name)
			} else {
				u.Replaced = append(u.Replaced, sc.Name)
			}
			m = nm
		}
		next.members = append(next.members, m)
		next.byName[sc.Name] = m
	}
	for _, m := range old.members {
		if next.byName[m.name] != m {
			u.old = append(u.old, m)
			if next.byName[m.name] == nil {
				u.Removed = append(u.Removed, m.name)
			}
		}
	}
	// The new servers connect without mu held: a Close meanwhile closes
	// them too (their Starts then return), rather than wait for them.
	// Once the group is closed they stay in starting, so that every later
	// Close waits for their teardown as for the rest.
	g.mu.Lock()
	for _, f := range fresh {
		g.starting[f] = struct{}{}
	}
	closed := g.closed
	g.mu.Unlock()
	if closed { // made after Close looked: closed here
		for _, f := range fresh {
			f.closePools()
		}
		return nil, ErrPoolClosed
	}
	err := g.startMembers(ctx, fresh, false)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrPoolClosed // Close closed the new servers' pools
	}
	for _, f := range fresh {
		delete(g.starting, f)
	}
	g.st.Store(next)
	for _, m := range u.old {
		g.retired[m] = struct{}{}
	}
	g.mu.Unlock()
	if len(u.Added)+len(u.Removed)+len(u.Replaced) > 0 {
		g.log.Info("group updated", "added", u.Added, "removed", u.Removed, "replaced", u.Replaced)
	}
	return u, err
}

// GroupUpdate is what a [Group.Update] changed. Its Close closes the pools
// of the servers it removed or replaced.
type GroupUpdate struct {
	// Added, Removed and Replaced name the servers the update added,
	// removed, and replaced with new pools (their config changed), in
	// configuration order.
	Added, Removed, Replaced []string

	g   *Group
	old []*member
}

// Changed reports whether the update added, removed or replaced a server.
func (u *GroupUpdate) Changed() bool {
	return len(u.Added)+len(u.Removed)+len(u.Replaced) > 0
}

// Close drains and closes the pools of the servers the update removed or
// replaced: it waits until no group call is routed to them any more
// (calls that routed there before the update finish there), then closes
// each pool as [Pool.Close] does, which waits for its calls in flight.
// Callers that route calls themselves through GroupServers (a gateway)
// call it once the calls they routed to those servers have finished. Like
// Pool.Close it returns by ctx's deadline, with the errors of the pools
// still closing ([*ServerError]s, errors.Is ErrCloseIncomplete), and may be
// called again to wait longer. It is safe for concurrent use.
func (u *GroupUpdate) Close(ctx context.Context) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range u.old {
		wg.Go(func() {
			n, err := m.calls.Drain(ctx)
			if err != nil {
				err = fmt.Errorf("%w: %d calls still routed to the server: %w", ErrCloseIncomplete, n, err)
			} else {
				var perrs []error
				for _, r := range m.replicas {
					perrs = append(perrs, r.pool.Close(ctx))
				}
				err = errors.Join(perrs...)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, &ServerError{Server: m.name, Err: u.g.red.err(err)})
				mu.Unlock()
				return
			}
			u.g.mu.Lock()
			delete(u.g.retired, m)
			u.g.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// enter enters the handle's member, or, when an Update has replaced it and
// it is closing, the server's current member.
func (s *GroupServer) enter() (*member, error) {
	if s.m.calls.Enter() {
		return s.m, nil
	}
	if m := s.m.g.state().byName[s.m.name]; m != nil && m.calls.Enter() {
		return m, nil
	}
	return nil, &ServerError{Server: s.m.name, Err: fmt.Errorf("the server was removed from the group: %w", ErrPoolClosed)}
}

// sameServer reports whether a and b configure a server the same way:
// equal but for function fields of their Configs, which compare by whether
// they are set.
func sameServer(a, b ServerConfig) bool {
	if len(a.Replicas) != len(b.Replicas) {
		return false
	}
	for i := range a.Replicas {
		if !SameConfig(a.Replicas[i], b.Replicas[i]) {
			return false
		}
	}
	if !SameConfig(a.Config, b.Config) {
		return false
	}
	a.Config, b.Config, a.Replicas, b.Replicas = Config{}, Config{}, nil, nil
	return reflect.DeepEqual(a, b)
}

// SameConfig reports whether a and b configure a pool the same way: all
// their fields equal (compared as reflect.DeepEqual compares them), but
// function fields (hooks such as OnProgress, NewTransport) and the runtime
// attachments ConnectLimiter, ClientHandlers, HTTPClient and Logger, which
// compare by whether they are set: a caller that attaches fresh ones to
// each config it builds (a gateway reloading its file) still describes the
// same server. [Group.Update] replaces a server whose configs differ by
// this rule.
func SameConfig(a, b Config) bool {
	ca, cb := a, b
	if (ca.ConnectLimiter == nil) != (cb.ConnectLimiter == nil) || (ca.ClientHandlers == nil) != (cb.ClientHandlers == nil) ||
		(ca.HTTPClient == nil) != (cb.HTTPClient == nil) || (ca.Logger == nil) != (cb.Logger == nil) {
		return false
	}
	ca.ConnectLimiter, cb.ConnectLimiter = nil, nil
	ca.ClientHandlers, cb.ClientHandlers = nil, nil
	ca.HTTPClient, cb.HTTPClient = nil, nil
	ca.Logger, cb.Logger = nil, nil
	va, vb := reflect.ValueOf(&ca).Elem(), reflect.ValueOf(&cb).Elem()
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() != reflect.Func || !fa.CanSet() {
			continue
		}
		if fa.IsNil() != fb.IsNil() {
			return false
		}
		fa.SetZero()
		fb.SetZero()
	}
	return reflect.DeepEqual(ca, cb)
}
