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
	"github.com/mcpool/mcpool/internal/drain"
	"github.com/mcpool/mcpool/internal/redact"
	"github.com/mcpool/mcpool/oauth"
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
	// upstream in ModePassthrough (an API key header of the upstream's own,
	// say). Authorization is refused: it carries the token that
	// authenticates the client to the gateway, which must never be sent to
	// another server (see "No token passthrough" in the package
	// documentation). A passthrough server needs ForwardHeaders, or
	// TokenExchange, or both.
	ForwardHeaders []string
	// TokenExchange, if set, gives each caller's upstream requests a token
	// issued for the upstream, exchanged (RFC 8693) for the caller's
	// validated token (Options.Auth is then required), in ModePassthrough:
	// upstream sessions and catalogs are partitioned per user, client and scopes. A failed
	// exchange is answered CodeUnauthorized with reason "exchange_failed".
	TokenExchange *oauth.Exchanger
	// Tools filters the server's tools (see [ToolPolicy]).
	Tools ToolPolicy
	// Access restricts who sees and calls the server (see [Access]).
	Access Access
	// RateLimit, if set, overrides Options.RateLimit for calls to this
	// server.
	RateLimit *RateLimit
	// Spares is how many pre-warmed upstream sessions ModeIsolated keeps
	// ready while idle. While new downstream sessions take them, the
	// gateway warms more, enough for the sessions that arrive during one
	// connect (up to twice mcpool.DefaultConnectLimit() or
	// MaxIsolatedSessions), and lets them go back to Spares once arrivals
	// stop. Zero means DefaultSpares (2); negative means none (every
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
	// DrainTimeout bounds how long Drain waits for calls in flight; those
	// still running then are cancelled (see [Gateway.Drain]). Zero means
	// DefaultDrainTimeout (30s).
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
	// SessionKeys, when set, make 2025-11-25-era sessions portable between
	// the replicas of a deployment, so that a load balancer may send any
	// request to any replica with no sticky routing: a session's
	// Mcp-Session-Id then carries its state (the negotiated protocol version,
	// the client's capabilities and info, the identity it is bound to, its
	// creation time and expiry), authenticated with HMAC-SHA256 under the
	// first key; ids signed with any of the keys are accepted (to rotate,
	// put the new key first and drop the old one after SessionMaxAge). Each
	// key needs at least 16 bytes; give every replica the same keys. A
	// replica that gets a valid id it does not hold restores the session
	// from it. A forged, tampered, expired or foreign id gets 404 (the
	// client starts a new session); an id sent with another caller's
	// credential (Authorization, or a verified token's subject) gets 403.
	// After a DELETE the id gets 404 on the replica that took it and, when
	// the servers share a catalog store (Redis), on every replica; without
	// one, other replicas' copies last until SessionIdleTimeout.
	//
	// What survives the loss of a replica: sessions, and calls to servers in
	// ModeShared and ModePassthrough (every replica has its own pools of
	// them); a call in flight on the lost replica is lost with it. A server
	// in ModeIsolated over streamable HTTP survives too: at initialize the
	// downstream session takes its upstream session (a spare when one is
	// ready), whose Mcp-Session-Id and InitializeResult travel in the id, and
	// any replica resumes it. That upstream session is ended by the client's
	// DELETE (on any replica) or the server's own timeout, never by a
	// replica closing; once the server has ended it (404), calls get
	// CodeSessionLost. Other isolated servers (stdio, NewTransport, or an
	// HTTP server without sessions or not reachable at initialize) keep
	// their upstream session on the replica that made it: a call from that
	// session on another replica gets CodeSessionLost, and the client must
	// start a new session; route a session's requests to the replica that
	// created it (a stick table learning Mcp-Session-Id) when those matter,
	// or set AdvertiseURL on every replica.
	// Nil keeps sessions on the replica that created them (404 elsewhere).
	SessionKeys [][]byte
	// AdvertiseURL is this replica's MCP endpoint as the other replicas
	// reach it (http://10.0.0.5:7300/mcp; an empty path means /mcp), for
	// isolated servers whose upstream sessions cannot travel in session ids
	// (stdio, NewTransport, HTTP servers without sessions). It needs
	// SessionKeys. A session that has such servers is owned by the replica
	// that created it, whose AdvertiseURL its id carries (encrypted): any
	// other replica forwards each of the session's requests there, whole
	// (streams included), with a header that authenticates the hop (an
	// HMAC, under a key derived from the session key, of the method, path,
	// session id and time; a client's forged one gets 403). The owner checks
	// the caller's credentials as for any request, and never forwards a hop
	// again. When the owner is gone (connection refused, or none within
	// 2s) or draining, the replica that took the request serves the session
	// itself from then on: calls to those servers get CodeSessionLost (start
	// a new session), other calls succeed. Sessions without such servers are
	// never forwarded. Empty: no forwarding (such calls get CodeSessionLost
	// on other replicas).
	AdvertiseURL string
	// SessionMaxAge is how long a portable session id is accepted after its
	// session was created. Zero means DefaultSessionMaxAge (24 hours).
	SessionMaxAge time.Duration
	// Auth, if set, makes the gateway an OAuth 2.1 resource server: every
	// request to /mcp (and to the status page, /status.json and /metrics)
	// needs a valid access token for it, the Protected Resource Metadata is
	// served at the paths Auth.MetadataPaths gives, and the caller's
	// identity drives Access, RateLimit, TokenExchange and the audit log.
	// Auth and Token exclude each other. The gateway does not close it.
	Auth *oauth.ResourceServer
	// RateLimit, if set, limits the calls of each identity (the token's
	// subject; one shared identity with Token or no authentication) to
	// each server; a server's own Server.RateLimit overrides it.
	RateLimit *RateLimit
	// Audit, if set, receives one line per call (tools/call, prompts/get,
	// resources/read): who, what, outcome, duration, bytes.
	Audit *oauth.Auditor
	// Secrets are strings (credentials) never to appear in the gateway's
	// log lines, errors, status or metrics, in addition to those of the
	// servers' Configs, Token and TokenExchange client secrets, which the
	// gateway finds itself.
	Secrets []string
	// Metrics, if set, is served at /metrics (a Prometheus handler, say).
	Metrics http.Handler
	// ConnectLimiter caps the connects (process starts and initializes) in
	// flight across the stdio servers' pools that the gateway makes, and
	// queues the rest first in first out; each server also gets a cap of
	// its own (see [ServerConnectLimiter]). A connect that would wait longer
	// than QueueWait is refused at once with CodeOverloaded. Nil means
	// mcpool.NewConnectLimiter(0, nil): mcpool.DefaultConnectLimit(), twice
	// the CPUs.
	ConnectLimiter *mcpool.ConnectLimiter
	// Logger receives the gateway's events. Nil means slog.Default().
	Logger *slog.Logger
}

// Gateway is an MCP server that serves upstream servers through pools. It is
// safe for concurrent use. Create it with [New], call [Gateway.Start], serve
// [Gateway.Handler] or [Gateway.ServeStdio], and shut it down with
// [Gateway.Drain] then [Gateway.Close].
type Gateway struct {
	opts     Options
	sec      *redact.Redactor
	log      *slog.Logger
	set      atomic.Pointer[serverSet] // replaced whole by Reload
	reloadMu sync.Mutex                // serializes Reload
	mcp      *mcp.Server
	adm      admission
	started  time.Time

	draining atomic.Bool
	// calls ends when the drain does with calls still in flight, or when
	// Close begins: every routed call runs under it (Gateway.call), by
	// whatever path it came (the fast path, the SDK's, stateless, stdio),
	// so that it is cancelled upstream and answered (drainCancelled).
	calls     context.Context
	stopCalls context.CancelCauseFunc
	requests  atomic.Int64  // POSTs to /mcp being handled (subscriptions excepted)
	answers   answerCounter // stdio: requests read and not yet answered
	ctx       context.Context
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	// bgMu guards bgClosed, set by Close before it waits for bg: work a
	// Reload starts then must not join bg (goBackground).
	bgMu     sync.Mutex
	bgClosed bool

	kick     chan struct{} // a list_changed came in: refresh catalogs now
	iso      isolation
	progress progressHub
	fast     fastPath  // fastpath.go: the tools/call fast path
	lists    listCache // listcache.go: the SDK's answers to stateless list requests
	resMu    sync.Mutex
	resOwner map[string]*server // resource URI -> server (shared and isolated)
	relay    relayHub           // calls in flight, for server→client requests (relay_requests.go)
	subs     subHub             // resource subscriptions (subscriptions.go)

	port *portable // portable sessions (SessionKeys), or nil

	closeOnce sync.Once
	closeErr  error
}

// server is a Server with its state.
type server struct {
	Server
	orig    Server         // as given, for Reload's comparison
	naming  *mcpool.Naming // names the server's tools and prompts
	ctx     context.Context
	cancel  context.CancelFunc // ends the server's background work
	calls   drain.Counter      // calls routed to it; drained after a Reload takes it out
	removed atomic.Bool        // a Reload took it out of the gateway's set
	// sparesDone is closed when keepSpares returns; nil if it never ran.
	sparesDone chan struct{}
	name       string
	maxQueued  int
	own        *mcpool.Pool  // catalog pool made by the gateway (isolated without Upstream)
	keyed      *mcpool.Keyed // passthrough
	spares     chan *mcpool.Pool
	refill     chan struct{}
	arrivals   arrivalRate // new downstream sessions of an isolated server (isolated.go)
	queued     atomic.Int64
	inFlight   atomic.Int64
	refused    atomic.Int64
	// unavailable: the server's breaker is open and no session is left.
	unavailable atomic.Bool
	// refreshing: a load of its catalog is under way; refreshAgain: one
	// is asked for (catalog.go: refreshAsync).
	refreshing, refreshAgain atomic.Bool
	win                      window
	sec                      serverSecurity // policy.go
	red                      redRecorder    // calls by method and outcome (red.go)

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
	completions  atomic.Int32 // whether the server declares completions (completion.go)
	fprint       [3]string
	listErr      error
	listWarned   bool // listErr's run of failures was logged
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
	if opts.AdvertiseURL != "" && len(opts.SessionKeys) == 0 {
		return nil, errors.New("gateway: AdvertiseURL needs SessionKeys: replicas forward sessions whose ids they can open")
	}
	adv, err := advertiseURL(opts.AdvertiseURL) // forward.go
	if err != nil {
		return nil, err
	}
	opts.AdvertiseURL = adv
	if opts.ConnectLimiter == nil {
		opts.ConnectLimiter = mcpool.NewConnectLimiter(0, nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Auth != nil && opts.Token != "" {
		return nil, errors.New("gateway: Auth and Token exclude each other: choose OAuth or the static token")
	}
	sec := newSecrets(opts) // redact.go
	opts.Logger = loggerOf(sec, opts.Logger)
	g := &Gateway{opts: opts, sec: sec, log: opts.Logger, started: time.Now(), resOwner: map[string]*server{}}
	g.adm = admission{slots: semaphore.NewWeighted(int64(opts.MaxInFlight)), max: int64(opts.MaxInFlight), wait: opts.QueueWait}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.calls, g.stopCalls = context.WithCancelCause(context.Background())
	set, _, err := g.newServerSet(opts.Servers, naming, nil)
	if err != nil {
		g.cancel()
		return nil, err
	}
	g.set.Store(set)
	queued := 0
	for _, srv := range set.servers {
		queued += max(srv.maxQueued, 0)
	}
	if g.opts.MaxRequests == 0 {
		g.opts.MaxRequests = opts.MaxInFlight + queued + 16
	}
	g.kick = make(chan struct{}, 1)
	g.iso.sessions = map[*mcp.ServerSession]*isoSession{}
	g.mcp = g.newMCPServer()
	if err := g.initPortable(); err != nil { // portable.go
		_ = g.closeServersCtx(context.Background())
		g.cancel()
		return nil, err
	}
	g.warnUnforwarded() // forward.go
	return g, nil
}

// newServer makes srv's state. It does no I/O.
func (g *Gateway) newServer(s Server, naming *mcpool.Naming) (*server, error) {
	orig := s
	if s.Mode == "" {
		s.Mode = ModeIsolated
	}
	srv := &server{Server: s, orig: orig, naming: naming, name: s.Name, maxQueued: orInt(s.MaxQueued, DefaultMaxQueued)}
	srv.ctx, srv.cancel = context.WithCancel(g.ctx)
	if s.MaxQueued < 0 {
		srv.maxQueued = 0
	}
	cfg := s.Config
	cfg.Logger = g.log.With("server", s.Name)
	cfg.ConnectLimiter = ServerConnectLimiter(cfg, g.opts.ConnectLimiter)
	cfg.OnProgress = g.OnProgress
	g.relayConfig(srv, &cfg, nil) // relay_requests.go
	switch s.Mode {
	case ModeShared:
		if s.Upstream == nil {
			return nil, fmt.Errorf("gateway: server %q: mode shared needs an Upstream", s.Name)
		}
	case ModeIsolated:
		srv.Spares = max(orInt(s.Spares, DefaultSpares), 0)
		srv.spares = make(chan *mcpool.Pool, g.maxSpares(srv.Spares)) // isolated.go
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
		if err := checkPassthrough(s, g.opts.Auth != nil); err != nil { // auth.go
			return nil, err
		}
		// Each credential's catalog is its own: tell every downstream
		// session to list again.
		cfg.OnListChanged = g.passthroughChanged // relay.go
		k, err := mcpool.NewKeyed(mcpool.KeyedConfig{Config: cfg, ForIdentity: srv.forIdentity})
		if err != nil {
			return nil, fmt.Errorf("gateway: server %q: %w", s.Name, err)
		}
		srv.keyed = k
	default:
		return nil, fmt.Errorf("gateway: server %q: unknown mode %q (shared, passthrough or isolated)", s.Name, s.Mode)
	}
	if err := g.initPolicy(srv); err != nil { // policy.go
		return nil, err
	}
	srv.Config = cfg
	return srv, nil
}

// close ends srv's background work and closes what newServer made for it.
func (srv *server) close(ctx context.Context) error {
	srv.cancel()
	if srv.sparesDone != nil {
		<-srv.sparesDone // no spare is added after this
	}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
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
	wg.Wait()
	return errors.Join(errs...)
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

// Start loads every server's catalog, starts the catalog watcher and warms
// the isolated servers' spares. It waits for each server until its catalog
// is loaded or a connect to it has failed: a server that is down or
// failing is served without its tools, prompts and resources (reported on
// the status page and logged, not an error) until it answers, and they
// then come with list_changed. It returns ctx's error if ctx ends first.
func (g *Gateway) Start(ctx context.Context) error {
	if err := g.startServers(ctx, g.set.Load().servers); err != nil {
		return err
	}
	g.bg.Go(g.watchCatalogs)
	g.bg.Go(g.relayListChanged) // relay.go
	return nil
}

// goBackground runs f in a goroutine Close waits for, and reports whether
// it did: not once Close has begun waiting.
func (g *Gateway) goBackground(f func()) bool {
	g.bgMu.Lock()
	defer g.bgMu.Unlock()
	if g.bgClosed {
		return false
	}
	g.bg.Go(f)
	return true
}

// Drain starts a graceful shutdown: /readyz fails, new calls and new HTTP
// requests are refused (CodeUnavailable, 503), and Drain waits until the
// calls in flight have finished, ctx ends or DrainTimeout passes. Then the
// calls still in flight, whatever path they came by (HTTP in either era,
// with or without progress, stdio), are cancelled: the upstream is told
// (notifications/cancelled) and each caller is answered CodeUnavailable
// with reason "draining" (see [CodeUnavailable]); Drain waits up to
// [DrainAnswerWait] more for those answers to be written, so that Close
// does not end their sessions first. It returns nil when every call
// finished, else a [*DrainError].
func (g *Gateway) Drain(ctx context.Context) error {
	g.draining.Store(true)
	g.stopStreams() // portable.go
	g.log.Info("draining: readiness dropped, new calls refused", "in_flight", g.adm.inFlight.Load())
	dctx, cancel := context.WithTimeout(ctx, g.opts.DrainTimeout)
	defer cancel()
	if g.waitIdle(dctx) {
		g.log.Info("drained: no call in flight")
		return nil
	}
	derr := &DrainError{InFlight: g.adm.inFlight.Load(), Requests: g.requests.Load(), Answers: g.answers.pending.Load(), Err: dctx.Err()}
	g.log.Warn("drain deadline: cancelling the calls still in flight", "in_flight", derr.InFlight, "requests", derr.Requests, "answers_owed", derr.Answers)
	g.stopCalls(errDrainEnded)
	actx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), DrainAnswerWait)
	defer cancel2()
	if !g.waitIdle(actx) {
		derr.Unended = true
		derr.LeftInFlight, derr.LeftRequests, derr.LeftAnswers = g.adm.inFlight.Load(), g.requests.Load(), g.answers.pending.Load()
	}
	return derr
}

// DrainAnswerWait is how long Drain waits, once it has cancelled the calls
// still in flight at its deadline, for them to end and their answers to be
// written. A cancelled call ends at once; this bounds one that does not.
const DrainAnswerWait = 2 * time.Second

// waitIdle waits until no call is in flight, no HTTP request is being
// handled and no stdio answer is owed, and reports whether that came
// before ctx ended.
func (g *Gateway) waitIdle(ctx context.Context) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for g.adm.inFlight.Load() > 0 || g.requests.Load() > 0 || g.answers.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// DrainError is Drain's error when its deadline (or ctx) ended it with
// calls in flight: those calls were cancelled, upstream and downstream.
type DrainError struct {
	// At the deadline: calls in flight (routed to a server), HTTP requests
	// being handled, stdio requests read and not yet answered.
	InFlight, Requests, Answers int64
	// Unended: some had not ended DrainAnswerWait after they were
	// cancelled; the Left figures are those still there then.
	Unended                                 bool
	LeftInFlight, LeftRequests, LeftAnswers int64
	// Err is ctx's error: context.DeadlineExceeded for DrainTimeout.
	Err error
}

// Error says how many calls the deadline found in flight and whether all
// of them were answered.
func (e *DrainError) Error() string {
	s := fmt.Sprintf("gateway: drain ended (%v) with %d calls in flight, %d HTTP requests being handled and %d stdio answers owed: the calls were cancelled",
		e.Err, e.InFlight, e.Requests, e.Answers)
	if e.Unended {
		return s + fmt.Sprintf(", and %v later %d calls, %d HTTP requests and %d stdio answers had still not ended", DrainAnswerWait, e.LeftInFlight, e.LeftRequests, e.LeftAnswers)
	}
	return s + " and every request answered"
}

// Unwrap returns the context error that ended the drain.
func (e *DrainError) Unwrap() error { return e.Err }

// Close ends every downstream session and closes the upstream pools the
// gateway made (isolated sessions, spares, passthrough partitions): HTTP
// sessions are deleted and stdio children reaped. It does not close the
// Upstreams it was given. Call Drain first for a graceful shutdown. Close is
// idempotent.
func (g *Gateway) Close(ctx context.Context) error {
	g.closeOnce.Do(func() {
		g.draining.Store(true)
		g.stopCalls(errDrainEnded) // what Drain left running, or all without a Drain
		g.cancel()
		for ss := range g.mcp.Sessions() {
			_ = ss.Close()
		}
		g.bgMu.Lock()
		g.bgClosed = true
		g.bgMu.Unlock()
		g.bg.Wait()
		// A request that passed the HTTP guard just before draining began
		// may have opened a session since.
		for ss := range g.mcp.Sessions() {
			_ = ss.Close()
		}
		g.closeErr = errors.Join(g.iso.closeAll(ctx), g.closeServersCtx(ctx))
		if g.port != nil {
			g.port.fwd.transport.CloseIdleConnections() // forward.go
		}
	})
	return g.closeErr
}

func (g *Gateway) closeServersCtx(ctx context.Context) error {
	// Serialized with Reload, so that a server it is taking out is closed
	// once.
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	servers := g.set.Load().servers
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { errs[i] = srv.close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready reports whether the gateway takes new calls (false while draining).
func (g *Gateway) Ready() bool { return !g.draining.Load() }
