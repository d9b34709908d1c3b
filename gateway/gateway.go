package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/semaphore"
)

// Mode says how a server's upstream sessions are shared between downstream
// clients; see the package documentation for when to choose which.
type Mode string

// The modes.
const (
	ModeShared      Mode = config.ModeShared
	ModePassthrough Mode = config.ModePassthrough
	ModeIsolated    Mode = config.ModeIsolated
)

// Defaults applied by [New] to zero-valued fields.
const (
	DefaultMaxInFlight        = 256
	DefaultMaxQueued          = 64
	DefaultQueueWait          = 10 * time.Second
	DefaultCallTimeout        = 5 * time.Minute
	DefaultSessionIdleTimeout = 10 * time.Minute
	DefaultDrainTimeout       = 30 * time.Second
	DefaultSpares             = 2
	DefaultCatalogPoll        = time.Second
)

// Upstream is what the gateway needs of one upstream server: its catalog
// under the server's own names, and calls by those names. [PoolUpstream]
// makes one of a Pool; a Group's [mcpool.GroupServer] is one (see
// [GroupServers]). Its methods must be safe for concurrent use.
type Upstream interface {
	ListTools(ctx context.Context) ([]*mcp.Tool, error)
	ListPrompts(ctx context.Context) ([]*mcp.Prompt, error)
	ListResources(ctx context.Context) ([]*mcp.Resource, error)
	CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error)
	GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error)
	ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error)
	// Stats sums the server's pools (its replicas').
	Stats() mcpool.Stats
}

// ReplicaStats describes one replica of a server on the status page.
type ReplicaStats struct {
	Name  string       // the replica's endpoint (without credentials) or index
	Stats mcpool.Stats // its pool's figures
}

// Server is one upstream server served by the gateway.
type Server struct {
	// Name is the server's name in the config. Its tools and prompts are
	// listed under the names Options.Naming gives them.
	Name string
	// Mode is how upstream sessions are shared. Empty means ModeIsolated.
	Mode Mode
	// Upstream is the server's pool (a Group's, usually), used for every
	// call in ModeShared and for the catalog in ModeIsolated. Not used in
	// ModePassthrough. The gateway never closes it.
	Upstream Upstream
	// Config is the template of the pools the gateway makes itself: per
	// downstream session in ModeIsolated, per credential in
	// ModePassthrough. Its Logger, MinSessions and MaxSessions are set by
	// the gateway.
	Config mcpool.Config
	// ForwardHeaders names the downstream request headers forwarded
	// upstream in ModePassthrough. Nil means {"Authorization"}.
	ForwardHeaders []string
	// Spares is how many pre-warmed upstream sessions ModeIsolated keeps
	// ready. Zero means DefaultSpares (2); negative means none (every
	// downstream session's first call connects on its own time).
	Spares int
	// MaxQueued caps the callers queued for this server when the gateway
	// is at MaxInFlight. Zero means DefaultMaxQueued (64); negative means
	// none may queue.
	MaxQueued int
	// Replicas, if set, reports per-replica figures for the status page.
	Replicas func() []ReplicaStats
}

// Options configure a [Gateway].
type Options struct {
	// Servers are the upstream servers, in the order the catalog lists them.
	Servers []Server
	// Naming names every server's tools and prompts downstream, and finds
	// the server and its own name again for tools/call and prompts/get: a
	// Group's rule ([mcpool.Naming]), so that the gateway lists the names
	// the Group lists, whatever the mode. Serving a Group, set it to the
	// GroupConfig's Naming (the one with every server, passthrough ones
	// too: see [GroupServers]), which carries its Separator and Unprefixed.
	// It must know every server of Servers. Nil means the rule of a
	// GroupConfig with these servers' names and nothing else set.
	Naming *mcpool.Naming
	// MaxInFlight caps the calls (tools/call, prompts/get, resources/read)
	// in flight across the gateway. Zero means DefaultMaxInFlight (256).
	MaxInFlight int
	// MaxIsolatedSessions caps the upstream sessions that downstream
	// sessions hold of servers in ModeIsolated, across servers (spares not
	// counted). At the cap, a downstream session's first call to a server
	// closes the least recently used idle one (that downstream session's
	// next call connects again, with its server-side state lost) or, when
	// all are busy, is refused with CodeOverloaded. Zero means twice
	// MaxInFlight.
	MaxIsolatedSessions int
	// QueueWait bounds how long a queued call waits for a slot before it
	// gets CodeOverloaded. Zero means DefaultQueueWait (10s).
	QueueWait time.Duration
	// CallTimeout bounds one call, upstream included. Zero means
	// DefaultCallTimeout (5 minutes).
	CallTimeout time.Duration
	// MaxRequests caps the HTTP POSTs to /mcp being handled at once; beyond
	// it the gateway answers 429 with Retry-After without reading the body.
	// Zero means MaxInFlight + the servers' MaxQueued + 16 (for lists).
	MaxRequests int
	// Token, if set, is the bearer token downstream clients must send on
	// /mcp, and the status page, /status.json and /metrics need too (the
	// "Bearer" scheme in any case). It is compared in constant time and
	// never logged.
	Token string
	// SessionIdleTimeout closes downstream HTTP sessions idle this long (and
	// their isolated upstream sessions). Zero means
	// DefaultSessionIdleTimeout (10 minutes).
	SessionIdleTimeout time.Duration
	// DrainTimeout bounds how long Drain waits for calls in flight. Zero
	// means DefaultDrainTimeout (30s).
	DrainTimeout time.Duration
	// CatalogPoll is how often upstream catalogs are checked for changes
	// (a cache hit unless list_changed emptied the cache). Zero means
	// DefaultCatalogPoll (1s).
	CatalogPoll time.Duration
	// SessionsOnly serves every downstream client with 2025-11-25-era
	// sessions: a 2026-07-28 client is answered "unsupported protocol
	// version" and falls back to initialize. The SDK builds a server
	// session for every stateless request, which costs about twice a
	// session's call (BENCHMARKS.md); set it when that matters more than
	// serving the new era.
	SessionsOnly bool
	// Stateless serves every downstream request on its own, 2025-11-25
	// clients included: no Mcp-Session-Id is handed out, so any gateway
	// replica behind a load balancer can answer any request, with no sticky
	// routing. What needs a session then does not work across requests:
	// servers in ModeIsolated get a new upstream session for every request,
	// and list_changed and progress notifications reach a client only on
	// the request that caused them. SessionsOnly and Stateless exclude each
	// other.
	Stateless bool
	// Metrics, if set, is served at /metrics (a Prometheus handler, say).
	Metrics http.Handler
	// Logger receives the gateway's events. Nil means slog.Default().
	Logger *slog.Logger
}

// Gateway is an MCP server that serves upstream servers through pools. It is
// safe for concurrent use. Create it with [New], call [Gateway.Start], serve
// [Gateway.Handler] or [Gateway.ServeStdio], and shut it down with
// [Gateway.Drain] then [Gateway.Close].
type Gateway struct {
	opts    Options
	naming  *mcpool.Naming
	log     *slog.Logger
	servers []*server
	byName  map[string]*server
	mcp     *mcp.Server
	adm     admission
	started time.Time

	draining atomic.Bool
	requests atomic.Int64  // POSTs to /mcp being handled (subscriptions excepted)
	answers  answerCounter // stdio: requests read and not yet answered
	ctx      context.Context
	cancel   context.CancelFunc
	bg       sync.WaitGroup

	kick     chan struct{} // a list_changed came in: refresh catalogs now
	iso      isolation
	progress progressHub
	resMu    sync.Mutex
	resOwner map[string]*server // resource URI -> server (shared and isolated)
	relay    relayHub           // calls in flight, for server→client requests (relay_requests.go)
	subs     subHub             // resource subscriptions (subscriptions.go)

	closeOnce sync.Once
	closeErr  error
}

// server is a Server with its state.
type server struct {
	Server
	name      string
	maxQueued int
	own       *mcpool.Pool  // catalog pool made by the gateway (isolated without Upstream)
	keyed     *mcpool.Keyed // passthrough
	spares    chan *mcpool.Pool
	refill    chan struct{}
	queued    atomic.Int64
	inFlight  atomic.Int64
	refused   atomic.Int64
	// unavailable: the server's breaker is open and no session is left.
	unavailable atomic.Bool
	win         window

	mu        sync.Mutex
	tools     []*mcp.Tool // named by the Naming
	prompts   []*mcp.Prompt
	resources []*mcp.Resource
	ownNames  [2]map[string]string   // tools' and prompts' downstream name → the server's; nil until listed
	handlers  *mcpool.ClientHandlers // relays what the upstream sends the client (relay_requests.go)
	// spareVersion: the protocol version of the last client of an earlier
	// era that ModeIsolated served: spares are warmed with it (isolated.go).
	spareVersion atomic.Value
	spareAsks    atomic.Value // asks: what the last client served answers
	fprint       [3]string
	listErr      error
}

// New validates opts and returns a gateway. New does no I/O: Start loads the
// catalogs and warms the spares.
func New(opts Options) (*Gateway, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("gateway: no servers configured")
	}
	if opts.SessionsOnly && opts.Stateless {
		return nil, errors.New("gateway: SessionsOnly and Stateless exclude each other: choose one")
	}
	naming := opts.Naming
	if naming == nil {
		gc := &mcpool.GroupConfig{}
		for _, s := range opts.Servers {
			gc.Servers = append(gc.Servers, mcpool.ServerConfig{Name: s.Name})
		}
		var err error
		if naming, err = gc.Naming(); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	for _, s := range opts.Servers {
		if _, ok := naming.Name(s.Name, ""); !ok {
			return nil, fmt.Errorf("gateway: server %q is not one of Options.Naming's servers %q: make the Naming from a GroupConfig with every server", s.Name, naming.Servers())
		}
	}
	if opts.MaxInFlight < 0 || opts.MaxRequests < 0 || opts.QueueWait < 0 || opts.CallTimeout < 0 || opts.MaxIsolatedSessions < 0 {
		return nil, errors.New("gateway: MaxInFlight, MaxRequests, MaxIsolatedSessions, QueueWait and CallTimeout must not be negative")
	}
	opts.MaxInFlight = orInt(opts.MaxInFlight, DefaultMaxInFlight)
	opts.MaxIsolatedSessions = orInt(opts.MaxIsolatedSessions, 2*opts.MaxInFlight)
	opts.QueueWait = orDur(opts.QueueWait, DefaultQueueWait)
	opts.CallTimeout = orDur(opts.CallTimeout, DefaultCallTimeout)
	opts.SessionIdleTimeout = orDur(opts.SessionIdleTimeout, DefaultSessionIdleTimeout)
	opts.DrainTimeout = orDur(opts.DrainTimeout, DefaultDrainTimeout)
	opts.CatalogPoll = orDur(opts.CatalogPoll, DefaultCatalogPoll)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	g := &Gateway{opts: opts, naming: naming, log: opts.Logger, byName: map[string]*server{}, started: time.Now(), resOwner: map[string]*server{}}
	g.adm = admission{slots: semaphore.NewWeighted(int64(opts.MaxInFlight)), max: int64(opts.MaxInFlight), wait: opts.QueueWait}
	queued := 0
	for _, s := range opts.Servers {
		srv, err := g.newServer(s)
		if err != nil {
			g.closeServers()
			return nil, err
		}
		g.servers = append(g.servers, srv)
		g.byName[srv.name] = srv
		queued += max(srv.maxQueued, 0)
	}
	if g.opts.MaxRequests == 0 {
		g.opts.MaxRequests = opts.MaxInFlight + queued + 16
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.kick = make(chan struct{}, 1)
	g.iso.sessions = map[*mcp.ServerSession]*isoSession{}
	g.mcp = g.newMCPServer()
	return g, nil
}

func (g *Gateway) newServer(s Server) (*server, error) {
	if s.Name == "" {
		return nil, errors.New("gateway: a server has no name")
	}
	if _, dup := g.byName[s.Name]; dup {
		return nil, fmt.Errorf("gateway: server %q configured twice", s.Name)
	}
	if s.Mode == "" {
		s.Mode = ModeIsolated
	}
	srv := &server{Server: s, name: s.Name, maxQueued: orInt(s.MaxQueued, DefaultMaxQueued)}
	if s.MaxQueued < 0 {
		srv.maxQueued = 0
	}
	cfg := s.Config
	cfg.Logger = g.log.With("server", s.Name)
	cfg.OnProgress = g.OnProgress
	g.relayConfig(srv, &cfg, nil) // relay_requests.go
	switch s.Mode {
	case ModeShared:
		if s.Upstream == nil {
			return nil, fmt.Errorf("gateway: server %q: mode shared needs an Upstream", s.Name)
		}
	case ModeIsolated:
		srv.Spares = max(orInt(s.Spares, DefaultSpares), 0)
		srv.spares = make(chan *mcpool.Pool, srv.Spares)
		srv.refill = make(chan struct{}, 1)
		if s.Upstream == nil {
			p, err := mcpool.New(cfg)
			if err != nil {
				return nil, fmt.Errorf("gateway: server %q: %w", s.Name, err)
			}
			srv.own, srv.Upstream = p, PoolUpstream(p)
		}
	case ModePassthrough:
		if cfg.URL == "" && cfg.SSEURL == "" {
			return nil, fmt.Errorf("gateway: server %q: mode passthrough forwards HTTP headers, so it needs an HTTP server (url), not a stdio one", s.Name)
		}
		if s.ForwardHeaders == nil {
			srv.ForwardHeaders = []string{"Authorization"}
		}
		for _, h := range srv.ForwardHeaders {
			if http.CanonicalHeaderKey(h) == "Authorization" && g.opts.Token != "" {
				return nil, fmt.Errorf("gateway: server %q: mode passthrough forwards Authorization, which carries the gateway's own token: forward another header (forwardHeaders)", s.Name)
			}
		}
		cfg.BearerToken, cfg.Token = "", nil
		// Each credential's catalog is its own: tell every downstream
		// session to list again.
		cfg.OnListChanged = func(kind string) { g.notifyChanged(kindMask(kind)) }
		k, err := mcpool.NewKeyed(mcpool.KeyedConfig{Config: cfg, ForIdentity: forIdentity})
		if err != nil {
			return nil, fmt.Errorf("gateway: server %q: %w", s.Name, err)
		}
		srv.keyed = k
	default:
		return nil, fmt.Errorf("gateway: server %q: unknown mode %q (shared, passthrough or isolated)", s.Name, s.Mode)
	}
	srv.Config = cfg
	return srv, nil
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Start loads every server's catalog (a server that fails is left out and
// reported on the status page, not an error), starts the catalog watcher
// and warms the isolated servers' spares. It returns ctx's error if ctx
// ends first.
func (g *Gateway) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, srv := range g.servers {
		if srv.Mode != ModePassthrough {
			wg.Go(func() { g.refreshCatalog(ctx, srv, false) })
		}
		if srv.Mode == ModeIsolated {
			g.bg.Go(func() { g.keepSpares(srv) })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		<-done
		return ctx.Err()
	}
	g.bg.Go(g.watchCatalogs)
	return nil
}

// Drain starts a graceful shutdown: /readyz fails, new calls and new HTTP
// requests are refused (CodeUnavailable, 503), and Drain waits until the
// calls in flight have finished, ctx ends or DrainTimeout passes. It
// returns nil when every call finished, else an error saying how many were
// still running.
func (g *Gateway) Drain(ctx context.Context) error {
	g.draining.Store(true)
	g.log.Info("draining: readiness dropped, new calls refused", "in_flight", g.adm.inFlight.Load())
	ctx, cancel := context.WithTimeout(ctx, g.opts.DrainTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for g.adm.inFlight.Load() > 0 || g.requests.Load() > 0 || g.answers.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: drain ended with %d calls still in flight, %d HTTP requests being handled and %d answers not yet written: %w",
				g.adm.inFlight.Load(), g.requests.Load(), g.answers.pending.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	g.log.Info("drained: no call in flight")
	return nil
}

// Close ends every downstream session and closes the upstream pools the
// gateway made (isolated sessions, spares, passthrough partitions): HTTP
// sessions are deleted and stdio children reaped. It does not close the
// Upstreams it was given. Call Drain first for a graceful shutdown. Close is
// idempotent.
func (g *Gateway) Close(ctx context.Context) error {
	g.closeOnce.Do(func() {
		g.draining.Store(true)
		g.cancel()
		for ss := range g.mcp.Sessions() {
			_ = ss.Close()
		}
		g.bg.Wait()
		// A request that passed the HTTP guard just before draining began
		// may have opened a session since.
		for ss := range g.mcp.Sessions() {
			_ = ss.Close()
		}
		g.closeErr = errors.Join(g.iso.closeAll(ctx), g.closeServersCtx(ctx))
	})
	return g.closeErr
}

func (g *Gateway) closeServers() { _ = g.closeServersCtx(context.Background()) }

func (g *Gateway) closeServersCtx(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, srv := range g.servers {
		if srv.keyed != nil {
			wg.Go(func() { add(srv.keyed.Close(ctx)) })
		}
		if srv.own != nil {
			wg.Go(func() { add(srv.own.Close(ctx)) })
		}
		if srv.spares != nil {
			for {
				var p *mcpool.Pool
				select {
				case p = <-srv.spares:
				default:
				}
				if p == nil {
					break
				}
				wg.Go(func() { add(p.Close(ctx)) })
			}
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready reports whether the gateway takes new calls (false while draining).
func (g *Gateway) Ready() bool { return !g.draining.Load() }
