package mcpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults applied by [New] to zero-valued [Config] fields.
const (
	DefaultMinSessions        = 1
	DefaultMaxSessions        = 4
	DefaultMaxCallsPerSession = 32
	DefaultAcquireTimeout     = 30 * time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultDrainTimeout       = 10 * time.Second
	DefaultToolCacheTTL       = 5 * time.Minute
	DefaultClientName         = "mcpool"
	DefaultStdioTerminate     = 2 * time.Second

	DefaultHealthCheckInterval = 30 * time.Second
	DefaultPingTimeout         = 5 * time.Second
	DefaultMaxIdleTime         = 5 * time.Minute
	DefaultBackoffInitial      = 100 * time.Millisecond
	DefaultBackoffMax          = time.Second
	DefaultFailureThreshold    = 5
	DefaultBreakerOpenAfter    = 10 * time.Second
	DefaultBreakerCooldown     = time.Second
)

// DefaultMaxListPages is the page limit of one tool, prompt or resource
// listing when Config.MaxListPages is zero.
const DefaultMaxListPages = 100

// Config describes a pool. Exactly one of URL, SSEURL, Command and NewTransport
// names the server. Every other field is optional: its zero value means the
// documented default, applied by [New]. A Config is read once by New and may
// be reused or changed afterwards without affecting the pool.
type Config struct {
	// URL is a streamable HTTP endpoint (MCP spec 2025-11-25, "Streamable
	// HTTP"), for example "http://127.0.0.1:8080/mcp".
	URL string
	// SSEURL is a legacy HTTP+SSE endpoint (MCP spec 2024-11-05).
	SSEURL string
	// Command starts one child process per session and speaks MCP over its
	// stdin and stdout (MCP spec, "stdio").
	Command *Command
	// NewTransport returns a fresh transport for every session, for transports
	// the fields above do not cover. It is called with the connect context and
	// must not keep it.
	NewTransport func(ctx context.Context) (mcp.Transport, error)

	// Headers are sent on every HTTP request of every session. For
	// headers of one call only, see WithHeaders. New refuses a name or
	// value that net/http would refuse on every request (a control
	// character in a value: often a token read with its newline), as it
	// does such a BearerToken.
	Headers http.Header
	// BearerToken is sent as "Authorization: Bearer …" on every HTTP
	// request. At most one of BearerToken, Token and OAuthHandler.
	BearerToken string
	// Token supplies a bearer token per HTTP request, so that a rotated
	// token reaches live sessions at once; see TokenFunc (and
	// TokenSourceFunc for an oauth2.TokenSource).
	Token TokenFunc
	// OAuthHandler runs the SDK's full OAuth flow on the streamable HTTP
	// transport (go-sdk auth.OAuthHandler); URL only.
	OAuthHandler auth.OAuthHandler

	// MinSessions is the number of sessions Start connects and the pool keeps.
	// Zero means DefaultMinSessions (1). It must not exceed MaxSessions.
	MinSessions int
	// MaxSessions caps the sessions of the pool, counting those still
	// connecting. Zero means the larger of DefaultMaxSessions (4) and
	// MinSessions. Sessions leaving the pool (dead, or retiring while they
	// finish their calls) no longer count, and a lifetime renewal may be
	// connected while the session it replaces still serves.
	MaxSessions int
	// MaxCallsPerSession is the most calls (leases) one session carries at
	// once; JSON-RPC multiplexes them by id. 1 lends sessions exclusively.
	// Zero means DefaultMaxCallsPerSession (32). The pool puts fewer on a
	// session unless the server shows it gains from more at once
	// (Stats.CallsPerSessionLimit; see Pool.Acquire).
	MaxCallsPerSession int

	// AcquireTimeout bounds how long Acquire waits for room when every
	// session is full. Zero means DefaultAcquireTimeout (30s); negative means
	// wait for as long as the caller's context allows.
	AcquireTimeout time.Duration
	// ConnectTimeout bounds one connect, including the initialize (or
	// server/discover) exchange. A connect it cuts short fails with a
	// *ConnectError that matches context.DeadlineExceeded and names this
	// setting. Zero means DefaultConnectTimeout (10s). It starts when the
	// connect gets its turn from ConnectLimiter, not while it queues.
	ConnectTimeout time.Duration
	// ConnectLimiter caps the connects in flight of every pool that shares
	// it and queues the rest first in first out (see [ConnectLimiter]):
	// share one between pools that start processes on the same machine
	// (many pools of one stdio server, say). Nil means a limiter of the
	// pool's own: DefaultConnectLimit() connects at once for stdio and
	// NewTransport, four times that for URL and SSEURL.
	ConnectLimiter *ConnectLimiter
	// ConnectQueueWait bounds how long a connect waits for its turn from
	// ConnectLimiter. A connect whose turn the limiter estimates will not
	// come within it (queued connects ahead of it, over the cap, times the
	// mean connect) does not queue; one already queued leaves as soon as
	// the estimate, made again as the queue moves and connects slow down,
	// passes what is left of it, and at the latest when it runs out. Either
	// way the connect fails with a *ConnectError matching
	// ErrConnectQueueFull, which is backpressure, not the server's failure:
	// it does not count toward the circuit breaker, and Start returns it at
	// once. Zero means a connect waits as long as the pool lives (Start's
	// ctx bounds Start).
	ConnectQueueWait time.Duration
	// DrainTimeout bounds how long Close lets calls in flight finish before
	// it cancels them. Zero means DefaultDrainTimeout (10s).
	DrainTimeout time.Duration
	// ToolCacheTTL is how long a ListTools result is served from the cache.
	// Zero means DefaultToolCacheTTL (5 minutes); negative disables the
	// cache. A notifications/tools/list_changed from any session of the pool
	// empties it at once.
	ToolCacheTTL time.Duration

	// ClientName and ClientVersion are sent as the client's implementation
	// info. Zero means "mcpool" and this module's version.
	ClientName    string
	ClientVersion string
	// ProtocolVersion pins the MCP protocol version, for example
	// "2025-11-25". Empty means negotiate on the first connect and pin the
	// negotiated version for every later session of the pool, which spares
	// reconnects the server/discover probe.
	ProtocolVersion string

	// HealthCheckInterval is how often the pool probes sessions that have
	// been idle at least that long. The probe is a "ping" with its
	// own PingTimeout; under 2026-07-28, where servers need not implement
	// ping, any JSON-RPC answer (even "method not found") proves the session
	// alive, and only a transport failure or the timeout fails it. A session
	// that fails is replaced. Zero means DefaultHealthCheckInterval (30s);
	// negative disables the background probes.
	HealthCheckInterval time.Duration
	// PingTimeout bounds one probe. Zero means DefaultPingTimeout (5s).
	PingTimeout time.Duration
	// ProbeOnAcquire, if positive, makes Acquire probe a session idle at
	// least this long before handing it out; a failing session is replaced
	// and another chosen. The probe is bounded by PingTimeout and by the
	// caller's ctx (whose error Acquire then returns). Zero disables it.
	ProbeOnAcquire time.Duration
	// MaxSessionLifetime retires sessions this old, minus a jitter of up to
	// 10% fixed when the session is made so that sessions made together do
	// not retire together. A retiring session takes no new calls, finishes
	// its calls, then closes; when MinSessions needs it, its replacement is
	// connected first. Zero means no limit.
	MaxSessionLifetime time.Duration
	// MaxIdleTime closes sessions above MinSessions that carried no call for
	// this long, but those holding resource subscriptions (Pool.Subscribe).
	// Zero means DefaultMaxIdleTime (5 minutes); negative never.
	MaxIdleTime time.Duration
	// BackoffInitial and BackoffMax shape the delay before a connect that
	// follows failed ones: exponential with full jitter, a random delay in
	// [0, min(BackoffMax, BackoffInitial×2^(failures-1))]. Each connect
	// needed (for MinSessions, for callers waiting) backs off on its own, so
	// one connect killed while it initializes (a crash-looping stdio child)
	// does not hold the others back. The ceiling stays short so that a
	// server back from a restart is found within about BackoffMax. Zero
	// means DefaultBackoffInitial (100ms) and DefaultBackoffMax (1s).
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// FailureThreshold and BreakerOpenAfter decide when the circuit breaker
	// opens: once at least FailureThreshold connects in a row have failed
	// and the first of them is at least BreakerOpenAfter old, with no
	// successful connect since. Until then the server counts as restarting:
	// callers wait (within their ctx and AcquireTimeout) while connects back
	// off, and a restart costs them latency, not errors. Once the breaker is
	// open, an acquire that needs a new session fails at once with
	// ErrServerUnavailable. A permanent failure opens it at once (see
	// ErrMisconfigured: the executable not found; a stdio server writing
	// something other than JSON-RPC, or a line over the 16 MB frame limit,
	// on stdout during initialize; an HTTP answer that is not MCP, such as
	// HTML or text/plain; a redirect loop; 404 at the URL; 401 or 403).
	// Timeouts, refused connections, EOF, 5xx and 429 are transient. A
	// stdio session whose child exits by itself before the session served
	// a call, passed a health check or lived a second counts as a failed
	// connect, and steepens the backoff: a server that exits after every
	// initialize is started no more than 5 times in the first 3 seconds.
	//
	// FailureThreshold zero means DefaultFailureThreshold (5); negative
	// disables the breaker, and then a caller waiting for a session gets a
	// failed connect's error at once. BreakerOpenAfter zero means
	// DefaultBreakerOpenAfter (10s); negative opens on FailureThreshold
	// alone, however quickly the failures came.
	FailureThreshold int
	BreakerOpenAfter time.Duration
	// BreakerCooldown is how long the breaker stays open before one probe
	// connect may go through (half-open); its success closes the breaker,
	// its failure opens it for another cool-down. So a server back after a
	// long outage is found within about BreakerCooldown. Zero means
	// DefaultBreakerCooldown (1s).
	BreakerCooldown time.Duration

	// LeakThreshold, if positive, turns on leak detection: a lease held
	// longer than this logs one warning carrying the stack of the code that
	// acquired it, and counts in Stats.LeakedLeases. The stack is captured
	// at each Acquire only when this is set. Zero (the default) disables it.
	LeakThreshold time.Duration

	// MaxListPages bounds one ListTools, ListPrompts or ListResources
	// fetch: a server still sending a next cursor after this many pages (or
	// sending one cursor twice) gets a *ListTooLongError (ErrListTooLong)
	// instead of a fetch that grows without end. Zero means
	// DefaultMaxListPages (100).
	MaxListPages int

	// CatalogStore, if set, shares the catalog (tools, prompts, resources)
	// with other processes pooling sessions to the same server, such as
	// gateway replicas: a list missing here is read from the store before
	// the server is asked, one process fetches an expired list for all, and
	// a list_changed seen here invalidates the list everywhere. A store that
	// fails or is slow is skipped (with backoff) and the local cache serves;
	// see [CatalogStore]. Nil means the catalog is this pool's own.
	CatalogStore CatalogStore
	// CatalogKey names this server's lists in CatalogStore: pools that are
	// to share lists use the same key, and pools of different servers must
	// not. Empty means the URL or SSEURL without credentials or query;
	// stdio and NewTransport pools with a CatalogStore must set it. A keyed
	// pool ([Keyed]) adds a digest of the identity, so that a list fetched
	// with one identity's credentials is never served to another.
	CatalogKey string

	// OnCatalogChange, if set, is called after a tool, prompt or resource
	// list fetched from the server differs from the previous fetch.
	// It runs on the fetching goroutine: keep it quick.
	OnCatalogChange func(CatalogChange)
	// OnProgress, if set, receives the server's notifications/progress for
	// requests sent through the pool's sessions (MCP spec, "Progress"),
	// for example to relay them to a caller further away. It runs on the
	// session's reading goroutine: keep it quick.
	OnProgress func(ctx context.Context, req *mcp.ProgressNotificationClientRequest)
	// OnListChanged, if set, is called when a session of the pool receives
	// notifications/tools/list_changed, prompts/list_changed or
	// resources/list_changed (kind "tools", "prompts" or "resources"; MCP
	// spec, "List Changed Notification"), after the pool's cache of that list
	// has been emptied, and when another process sharing the catalog through
	// CatalogStore reports such a change. It runs on the SDK's notification
	// goroutine (or the store's): keep it quick. A [Group] uses it to
	// refresh one server's part of its catalog.
	OnListChanged func(kind string)

	// ClientHandlers answer elicitation and sampling requests from the
	// server; nil declares neither capability. See ClientHandlers.
	ClientHandlers *ClientHandlers

	// Logger receives the pool's events. Nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient carries URL and SSEURL traffic. Nil means a client owned by
	// the pool whose transport keeps MaxSessions × (MaxCallsPerSession + 1)
	// idle connections per host (Config.IdleConns), so that concurrent calls
	// (each its own POST) do not churn TCP connections; the pool closes its
	// idle connections on Close. A client you pass is never closed by the
	// pool: give its transport as many idle connections.
	HTTPClient *http.Client
}

// Command describes the child process started for each stdio session.
type Command struct {
	// Path is the program, looked up in PATH when it has no separator.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the child's environment in "KEY=value" form. Nil means the
	// environment of this process.
	Env []string
	// Dir is the child's working directory. Empty means this process's.
	Dir string
	// Stderr receives the child's standard error. Nil discards it. Either
	// way the pool keeps the last 4 KB of it, so that a child that exits
	// during connect is explained by ConnectError.Stderr.
	Stderr io.Writer
	// TerminateTimeout is how long closing a session waits for the child to
	// exit after its stdin is closed, and again after SIGTERM, before SIGKILL
	// (MCP spec, "stdio" shutdown). Zero means DefaultStdioTerminate (2s).
	TerminateTimeout time.Duration
}

// settings is a validated Config with every default applied.
type settings struct {
	Config
	cacheTTL time.Duration
	connects *ConnectLimiter // ConnectLimiter, or the pool's own
}

// IdleConns is how many idle HTTP connections per host a pool with this
// Config keeps in the client it makes itself (HTTPClient nil): one for
// every call that can be in flight, MaxSessions × (MaxCallsPerSession + 1)
// with the zero values' defaults applied, since each call over HTTP is its
// own POST. A client given in HTTPClient should keep as many
// (http.Transport.MaxIdleConnsPerHost; net/http's default is 2), or
// connections churn: a new TCP connection for most calls. An invalid
// Config gives the defaults' figure.
func (c Config) IdleConns() int {
	s, err := c.validate()
	if err != nil {
		return DefaultMaxSessions * (DefaultMaxCallsPerSession + 1)
	}
	return s.idleConns()
}

func (s *settings) idleConns() int { return s.MaxSessions * (s.MaxCallsPerSession + 1) }

func (c *Config) validate() (*settings, error) {
	s := &settings{Config: *c}
	targets := 0
	if c.URL != "" {
		targets++
		if err := checkHTTPURL(c.URL); err != nil {
			return nil, configErr("URL", err.Error())
		}
	}
	if c.SSEURL != "" {
		targets++
		if err := checkHTTPURL(c.SSEURL); err != nil {
			return nil, configErr("SSEURL", err.Error())
		}
	}
	if c.Command != nil {
		targets++
		if c.Command.Path == "" {
			return nil, configErr("Command.Path", "is empty: name the program to start")
		}
		if c.Command.TerminateTimeout < 0 {
			return nil, configErr("Command.TerminateTimeout", "is negative")
		}
	}
	if c.NewTransport != nil {
		targets++
	}
	switch {
	case targets == 0:
		return nil, configErr("URL", "no server given: set one of URL, SSEURL, Command or NewTransport")
	case targets > 1:
		return nil, configErr("URL", "more than one server given: set exactly one of URL, SSEURL, Command or NewTransport")
	}

	auths := 0
	for _, set := range []bool{c.BearerToken != "", c.Token != nil, c.OAuthHandler != nil} {
		if set {
			auths++
		}
	}
	if auths > 1 {
		return nil, configErr("BearerToken", "set with Token or OAuthHandler: choose one way to authenticate")
	}
	if (auths > 0 || len(c.Headers) > 0) && c.URL == "" && c.SSEURL == "" {
		return nil, configErr("Headers", "and tokens apply to HTTP only (URL or SSEURL); a stdio server takes Command.Env")
	}
	if err := checkHeaders(c.Headers, c.BearerToken); err != nil {
		return nil, err
	}
	if c.OAuthHandler != nil && c.URL == "" {
		return nil, configErr("OAuthHandler", "works with URL (streamable HTTP) only")
	}
	if c.CatalogStore != nil && c.CatalogKey == "" && c.URL == "" && c.SSEURL == "" {
		return nil, configErr("CatalogKey", "is empty: a stdio or NewTransport pool with a CatalogStore must name its server's lists")
	}
	if c.MinSessions < 0 {
		return nil, configErr("MinSessions", "is negative")
	}
	if c.MaxSessions < 0 {
		return nil, configErr("MaxSessions", "is negative")
	}
	if c.MaxCallsPerSession < 0 {
		return nil, configErr("MaxCallsPerSession", "is negative")
	}
	if s.MinSessions == 0 {
		s.MinSessions = DefaultMinSessions
	}
	if s.MaxSessions == 0 {
		s.MaxSessions = max(DefaultMaxSessions, s.MinSessions)
	}
	if s.MinSessions > s.MaxSessions {
		return nil, configErr("MinSessions", fmt.Sprintf("(%d) exceeds MaxSessions (%d)", s.MinSessions, s.MaxSessions))
	}
	if c.MaxListPages < 0 {
		return nil, configErr("MaxListPages", "is negative")
	}
	if s.MaxListPages == 0 {
		s.MaxListPages = DefaultMaxListPages
	}
	if s.MaxCallsPerSession == 0 {
		s.MaxCallsPerSession = DefaultMaxCallsPerSession
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PingTimeout", c.PingTimeout}, {"ProbeOnAcquire", c.ProbeOnAcquire}, {"MaxSessionLifetime", c.MaxSessionLifetime},
		{"BackoffInitial", c.BackoffInitial}, {"BackoffMax", c.BackoffMax}, {"BreakerCooldown", c.BreakerCooldown},
		{"LeakThreshold", c.LeakThreshold}} {
		if d.v < 0 {
			return nil, configErr(d.name, "is negative")
		}
	}
	s.HealthCheckInterval = orDefault(c.HealthCheckInterval, DefaultHealthCheckInterval)
	s.PingTimeout = orDefault(c.PingTimeout, DefaultPingTimeout)
	s.MaxIdleTime = orDefault(c.MaxIdleTime, DefaultMaxIdleTime)
	s.BackoffInitial = orDefault(c.BackoffInitial, DefaultBackoffInitial)
	s.BackoffMax = orDefault(c.BackoffMax, DefaultBackoffMax)
	if s.BackoffInitial > s.BackoffMax {
		return nil, configErr("BackoffInitial", fmt.Sprintf("(%v) exceeds BackoffMax (%v)", s.BackoffInitial, s.BackoffMax))
	}
	if s.FailureThreshold == 0 {
		s.FailureThreshold = DefaultFailureThreshold
	}
	s.BreakerCooldown = orDefault(c.BreakerCooldown, DefaultBreakerCooldown)
	s.BreakerOpenAfter = orDefault(c.BreakerOpenAfter, DefaultBreakerOpenAfter)
	if c.ConnectTimeout < 0 {
		return nil, configErr("ConnectTimeout", "is negative")
	}
	if c.ConnectQueueWait < 0 {
		return nil, configErr("ConnectQueueWait", "is negative")
	}
	if c.DrainTimeout < 0 {
		return nil, configErr("DrainTimeout", "is negative")
	}
	s.AcquireTimeout = orDefault(c.AcquireTimeout, DefaultAcquireTimeout)
	s.ConnectTimeout = orDefault(c.ConnectTimeout, DefaultConnectTimeout)
	s.DrainTimeout = orDefault(c.DrainTimeout, DefaultDrainTimeout)
	s.cacheTTL = orDefault(c.ToolCacheTTL, DefaultToolCacheTTL)
	s.connects = connectLimiterFor(s)
	if s.ClientName == "" {
		s.ClientName = DefaultClientName
	}
	if s.ClientVersion == "" {
		s.ClientVersion = Version
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if c.CatalogStore != nil && s.CatalogKey == "" {
		if c.URL != "" {
			s.CatalogKey = redactURL(c.URL)
		} else {
			s.CatalogKey = redactURL(c.SSEURL)
		}
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func checkHTTPURL(raw string) error {
	// The messages never quote raw: it may carry credentials.
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must start with http:// or https:// (got scheme %q)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// checkHeaders refuses header names and values, and a bearer token, that
// net/http would refuse on every request (RFC 9110 section 5.5: no control
// character but a tab), so that the mistake fails at New instead of as
// connects retried until the breaker opens. A value is never quoted: it
// may be a credential. The usual cause is a token read with its trailing
// newline.
func checkHeaders(h http.Header, token string) error {
	bad := func(v string) bool {
		return strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
	}
	for name, vs := range h {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r)
		}) {
			// Not quoted: a name such as "Authorization: Bearer …" holds a credential.
			return configErr("Headers", "a header name has a space, a colon or another character names may not hold")
		}
		if slices.ContainsFunc(vs, bad) {
			return configErr("Headers", fmt.Sprintf("%s: the value has a control character (a line break read with it?)", name))
		}
	}
	if bad(token) {
		return configErr("BearerToken", "has a control character (a line break read with it?)")
	}
	return nil
}
