package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/loopback"
	mcpoolprom "github.com/mcpool/mcpool/prom"
	"github.com/mcpool/mcpool/redisstore"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// drainLinger is how long the gateway keeps answering 503 after its drain,
// before it closes idle connections. (A variable: a test lengthens it.)
var drainLinger = 250 * time.Millisecond

// tokenEnv holds the gateway's downstream token when --token is not given,
// so that it need not appear in a process listing.
const tokenEnv = "MCPOOL_GATEWAY_TOKEN"

// runGateway serves the servers of a config file through pooled sessions,
// over HTTP or stdio, until SIGINT or SIGTERM; then it drains: readiness
// drops, new calls are refused, calls in flight finish (within
// --drain-timeout), upstream sessions are closed, and it exits 0.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway")
	configPath := fs.String("config", "", "mcpServers (or VS Code servers) config file to serve; its \"gateway\" object sets modes per server")
	listen := fs.String("listen", "127.0.0.1:7300", "serve HTTP on this address: /mcp, /healthz, /readyz, / (status page)")
	stdio := fs.Bool("stdio", false, "serve one client over standard input and output instead of HTTP")
	token := fs.String("token", "", "bearer token clients must send (default $"+tokenEnv+"); required off loopback")
	authIssuer := fs.String("auth-issuer", "", "accept OAuth access tokens from this authorization server (issuer URL) instead of a static token:\n"+
		"the gateway becomes a resource server (default: the config's gateway.auth.issuer)")
	authAudience := fs.String("auth-audience", "", "the gateway's public /mcp URL that tokens must be issued for (default: the config's\n"+
		"gateway.auth.audience, else http://LISTEN/mcp on loopback)")
	auditLog := fs.String("audit-log", "", "write one JSON line per call (who, what, outcome, duration, bytes) to this file, or - for stderr")
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	verbose := fs.Bool("verbose", false, "log debug events (pools, sessions)")
	drain := fs.Duration("drain-timeout", gateway.DefaultDrainTimeout, "on SIGTERM, how long calls in flight may finish")
	sessionsOnly := fs.Bool("sessions-only", false, "serve 2025-11-25 sessions only: 2026-07-28 clients fall back to initialize (cheaper per call than stateless requests)")
	maxInFlight := fs.Int("max-in-flight", 0, "calls in flight across the gateway (default: the config's, else 256)")
	redisURL := fs.String("redis", "", "share tool, prompt and resource catalogs with other gateway replicas through this\n"+
		"Redis (redis://HOST:PORT/DB; default $"+redisEnv+", then the config's gateway.redis).\n"+
		"Implies --stateless unless --stateless=false or --session-key")
	watch := fs.Bool("watch", false, "reload the config file when it changes (checked every second), as on SIGHUP")
	stateless := fs.Bool("stateless", false, "serve every request on its own (no Mcp-Session-Id), so that any replica behind a\n"+
		"load balancer can answer it; isolated servers then get an upstream session per request")
	var sessionKeys []string
	fs.Func("session-key", "key the gateway replicas share (at least 16 bytes; default $"+sessionKeyEnv+", comma-separated): any\n"+
		"replica then serves any session, with no sticky routing. Repeat to rotate: the first signs new\n"+
		"session ids, all are accepted", func(v string) error { sessionKeys = append(sessionKeys, v); return nil })
	advertise := fs.String("advertise-url", "", "this replica's /mcp URL as the other replicas reach it (http://10.0.0.5:7300/mcp), with --session-key:\n"+
		"they forward there the requests of sessions whose isolated stdio servers run here (default: the config's\n"+
		"gateway.advertiseURL, else http://LISTEN/mcp when --listen names one address, neither loopback nor 0.0.0.0)")
	rest, err := parseFlags(fs, args, "gateway --config FILE [--listen ADDR | --stdio] [--token T]\n\n"+
		"SIGHUP (or, with --watch, a change of the file) reloads the config: servers added\n"+
		"start, removed ones finish their calls and close, changed ones are replaced.\n\n"+
		"Environment: $GOGC sets Go's garbage collector target; unset, the gateway uses 400\n"+
		"(Go's default is 100): it decodes every message twice, as server and as client, with\n"+
		"the SDK's 32 KiB decoder buffer, and 400 buys 1.1-1.45x the calls/s for 15-20 MiB\n"+
		"more memory. $GOMEMLIMIT caps the heap.", stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	if *configPath == "" {
		return usageErrorf("--config FILE is required")
	}
	if *logFormat != "text" && *logFormat != "json" {
		return usageErrorf("--log-format must be text or json")
	}
	if *drain <= 0 {
		return usageErrorf("--drain-timeout must be positive")
	}
	if *token == "" {
		*token = os.Getenv(tokenEnv)
	}
	if env := os.Getenv(sessionKeyEnv); len(sessionKeys) == 0 && env != "" {
		sessionKeys = strings.Split(env, ",")
	}
	defer tuneGatewayGC()() // gc.go
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	if *logFormat == "json" {
		log = slog.New(secrets.Handler(slog.NewJSONHandler(stderr, hopts))) // redact.go
	} else {
		log = slog.New(secrets.Handler(slog.NewTextHandler(stderr, hopts)))
	}

	var ln net.Listener
	offLoopback := false
	if !*stdio {
		host, _, err := net.SplitHostPort(*listen)
		if err != nil {
			return usageErrorf("--listen %q: %v", *listen, err)
		}
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			offLoopback = true
		}
	}

	triggers := newReloadTriggers(ctx, *configPath, *watch) // signals.go
	defer triggers.stop()
	file, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if !*stdio && !offLoopback && defaultAudience(file.Gateway.Auth, *authIssuer, *authAudience) {
		// The audience is the /mcp URL, port included: listen now.
		if ln, err = net.Listen("tcp", *listen); err != nil {
			return err
		}
		defer ln.Close()
		*listen = boundListen(*listen, ln.Addr())
	}
	rs, audit, closeSecurity, err := gatewaySecurity(ctx, file.Gateway.Auth, *authIssuer, *authAudience, *auditLog, *token, *listen, offLoopback, *stdio, stderr, log) // gateway_security.go
	if err != nil {
		return err
	}
	defer closeSecurity()
	for _, w := range file.Warnings {
		log.Warn(w)
	}
	gc, settings := &file.Group, file.Gateway
	addGatewaySecrets(settings) // gateway_security.go
	servers := settings.Servers
	// The one naming rule for every server, passthrough ones too (the
	// config package has set gc.Unprefixed and validated it).
	naming, err := gc.Naming()
	if err != nil {
		return usageErrorf("%s: %v", *configPath, err)
	}
	statelessSet := false
	fs.Visit(func(f *flag.Flag) { statelessSet = statelessSet || f.Name == "stateless" })
	store, err := openCatalogStore(*redisURL, settings.Redis, gc)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
		if !statelessSet && len(sessionKeys) == 0 {
			*stateless = true
		}
	}
	if !statelessSet && settings.Stateless {
		*stateless = true
	}
	if *stateless && *sessionsOnly {
		return usageErrorf("--stateless and --sessions-only exclude each other")
	}
	rl := &reloader{path: *configPath, log: log, stderr: stderr, store: store, stateless: *stateless, settings: settings}

	log.Info("starting", "build", mcpool.BuildInfo().String())
	// The gateway relays progress and list_changed from the pools, and is
	// made after them: the hooks reach it through gw.
	var gw *gateway.Gateway
	connects := mcpool.NewConnectLimiter(0, nil) // connects in flight across servers: the Group's pools and the gateway's
	ready := make(chan struct{})
	relay := func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
		select {
		case <-ready:
			gw.OnProgress(ctx, r)
		default:
		}
	}
	rl.relay = relay
	rl.connects = connects
	rl.getGW = func() *gateway.Gateway {
		select {
		case <-ready:
			return gw
		default:
			return nil
		}
	}
	rl.onListChanged = func(server, kind string) {
		select {
		case <-ready:
			gw.ListChanged(server, kind)
		default:
		}
	}
	defer rl.stopAuth()
	if err := rl.prepare(gc, settings, nil); err != nil {
		return err
	}
	// Passthrough servers dial with each client's credentials, through the
	// gateway's keyed pools: the Group, which dials with the gateway's own,
	// leaves them out.
	var group *mcpool.Group
	defer func() {
		if group = rl.group; group == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), *drain+10*time.Second)
		defer cancel()
		if err := group.Close(cctx); err != nil {
			log.Warn("closing upstream sessions", "error", err)
		}
	}()
	gcg := gateway.WithoutPassthrough(gc, servers)
	rl.gc, rl.gcg, rl.naming = gc, gcg, naming
	if len(gcg.Servers) > 0 {
		group, err = mcpool.NewGroup(*gcg)
		if err != nil {
			return err
		}
		rl.group = group
		// The Group starts in the background: the gateway's Start below
		// waits for each server until its catalog is loaded or it is
		// failing, so that a server that is down does not hold the others
		// back until its breaker opens. Servers that did not start are
		// reported here then, and retried in the background.
		startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		started := make(chan struct{})
		go func() {
			defer close(started)
			if err := group.Start(startCtx); err != nil && !errors.Is(startCtx.Err(), context.Canceled) { // not stopped: within 60 s or past it
				log.Warn("some servers did not start", "error", err)
			}
		}()
		defer func() { cancel(); <-started }() // before the Group's Close
	}
	if ctx.Err() != nil {
		log.Info("signal received while starting: stopped")
		return nil
	}

	advertiseURL, err := gatewayAdvertiseURL(*advertise, settings.AdvertiseURL, *listen, len(sessionKeys) > 0, *stdio)
	if err != nil {
		return err
	}
	opts := gateway.Options{
		Servers:             gateway.GroupServers(group, gc, servers),
		Naming:              naming,
		MaxInFlight:         settings.MaxInFlight,
		MaxIsolatedSessions: settings.MaxIsolatedSessions,
		QueueWait:           settings.QueueWait,
		CallTimeout:         settings.CallTimeout,
		Token:               *token,
		Auth:                rs,
		Audit:               audit,
		RateLimit:           gatewayRateLimit(settings.RateLimit),
		SessionsOnly:        *sessionsOnly,
		Stateless:           *stateless,
		SessionKeys:         keyBytes(sessionKeys),
		AdvertiseURL:        advertiseURL,
		DrainTimeout:        *drain,
		Logger:              log,
		ConnectLimiter:      connects,
	}
	// /metrics: the pools of every server (the Group's, and the keyed pools
	// of passthrough servers; isolated sessions' pools are seen on the
	// status page), the gateway's own figures, and the process.
	reg := prometheus.NewRegistry()
	metrics := mcpoolprom.New(mcpoolprom.Options{})
	rl.metrics = metrics
	if group != nil {
		if err := metrics.AddGroup(group); err != nil {
			return err
		}
	}
	reg.MustRegister(metrics, gatewayCollector{gw: &gw}, gatewayREDCollector{gw: &gw}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if *maxInFlight > 0 {
		opts.MaxInFlight = *maxInFlight
	}
	gw, err = gateway.New(opts)
	if err != nil {
		return err
	}
	// Passthrough servers' figures come from the gateway's keyed pools.
	rl.gw = gw
	if err := rl.exportKeyed(gc); err != nil {
		_ = gw.Close(context.Background())
		return err
	}
	close(ready)
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = gw.Start(startCtx)
	cancel()
	if err != nil {
		_ = gw.Close(context.Background())
		if ctx.Err() != nil {
			// SIGTERM or SIGINT while starting: nothing was served yet, so
			// closing is the whole drain.
			log.Info("signal received while starting: stopped")
			return nil
		}
		return err
	}
	// SIGHUP, and with --watch a change of the file, reload the config.
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloads := rl.run(reloadCtx, triggers)
	shutdown := func() error {
		stopReloads()
		<-reloads
		dctx, cancel := context.WithTimeout(context.Background(), *drain)
		defer cancel()
		derr := gw.Drain(dctx)
		cctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		if err := gw.Close(cctx); err != nil {
			log.Warn("closing the gateway", "error", err)
		}
		return derr
	}

	if *stdio {
		// The session runs on its own context: a signal first drains
		// (calls in flight finish), then ends the session.
		runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
		defer cancelRun()
		served := make(chan error, 1)
		go func() { served <- gw.ServeStdio(runCtx) }()
		log.Info("serving MCP on stdio", "servers", len(opts.Servers))
		var err error
		select {
		case err = <-served: // the client closed stdin
		case <-ctx.Done():
			log.Info("signal received: draining", "drain_timeout", *drain)
		}
		derr := shutdown()
		cancelRun()
		if ctx.Err() != nil {
			<-served
			if derr != nil {
				log.Warn("drain timed out: calls still in flight were cancelled", "error", derr)
			} else {
				log.Info("drained and stopped")
			}
			return nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}

	if host, _, _ := net.SplitHostPort(*listen); len(sessionKeys) == 0 && !*stateless && (store != nil || !loopback.Host(host)) {
		log.Warn("sessions stay on the replica that created them (another replica answers 404): behind a load balancer without sticky routing, set --session-key (or $" + sessionKeyEnv + ") to the same key on every replica, or --stateless")
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", *listen); err != nil {
			_ = shutdown()
			return err
		}
	}
	srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := boundListen(*listen, ln.Addr())
	log.Info("serving MCP", "url", "http://"+addr+"/mcp", "status", "http://"+addr+"/", "servers", len(opts.Servers))
	select {
	case <-ctx.Done():
		log.Info("signal received: draining", "drain_timeout", *drain)
	case err := <-served:
		_ = shutdown()
		return err
	}
	derr := shutdown()
	// Calls have finished and sessions are closed: what is left are idle
	// connections. A client between two calls may be writing its next
	// request on one right now; closing it under that request would fail
	// the request with a bare EOF (HTTP/1.1 has no way to retire an idle
	// connection gracefully). For drainLinger more, requests are still
	// read and answered 503 with Connection: close, which a client can
	// act on.
	log.Info("answering 503 before closing idle connections", "for", drainLinger)
	time.Sleep(drainLinger)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-served
	if derr != nil {
		log.Warn("drain timed out: calls still in flight were cancelled", "error", derr)
	} else {
		log.Info("drained and stopped")
	}
	return nil
}

// gatewayAdvertiseURL is the replica's address for the others: the flag's,
// else the config's, else, with session keys, http://LISTEN/mcp when the
// listen address names one host that other machines reach (neither a
// wildcard, which does not say which of the machine's addresses, nor
// loopback, which other machines do not reach): "" otherwise, and then
// sessions of isolated stdio servers are not forwarded.
func gatewayAdvertiseURL(flagged, configured, listen string, keys, stdio bool) (string, error) {
	if flagged == "" {
		flagged = configured
	}
	if flagged != "" {
		if !keys {
			return "", usageErrorf("--advertise-url (gateway.advertiseURL) needs --session-key: replicas forward the sessions whose ids they share a key for")
		}
		return flagged, nil
	}
	if !keys || stdio {
		return "", nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host == "" || port == "0" || loopback.Host(host) {
		return "", nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", nil
	}
	return "http://" + listen + "/mcp", nil
}

// sessionKeyEnv holds the --session-key keys (comma-separated) when the flag
// is not given.
const sessionKeyEnv = "MCPOOL_SESSION_KEY"

func keyBytes(keys []string) [][]byte {
	var out [][]byte
	for _, k := range keys {
		out = append(out, []byte(k))
	}
	return out
}

// redisEnv holds the --redis URL when the flag is not given, so that a
// password in it need not appear in a process listing.
const redisEnv = "MCPOOL_REDIS_URL"

// openCatalogStore opens the Redis catalog store named by the flag, the
// environment or the config file (in that order), and points every
// server's pools at it under the server's name; nil when none is named.
func openCatalogStore(flagURL, fileURL string, gc *mcpool.GroupConfig) (*redisstore.Store, error) {
	url := flagURL
	if url == "" {
		url = os.Getenv(redisEnv)
	}
	if url == "" {
		url = fileURL
	}
	if url == "" {
		return nil, nil
	}
	store, err := redisstore.New(redisstore.Options{URL: url})
	if err != nil {
		return nil, usageErrorf("--redis: %v", err)
	}
	for i := range gc.Servers {
		sc := &gc.Servers[i]
		// Replicas of one server list the same catalog: one key for all.
		sc.Config.CatalogStore, sc.Config.CatalogKey = store, "server:"+sc.Name
		for j := range sc.Replicas {
			sc.Replicas[j].CatalogStore, sc.Replicas[j].CatalogKey = store, "server:"+sc.Name
		}
	}
	return store, nil
}

// reloader reloads the gateway's config file (on SIGHUP, and with --watch
// when the file changes): the Group's servers through Group.Update, the
// gateway's through Gateway.Reload. A file that fails to load, or that the
// Group or the gateway refuses, leaves the running config, with one log
// line saying why.
type reloader struct {
	path      string
	log       *slog.Logger
	stderr    io.Writer
	store     *redisstore.Store
	stateless bool
	relay     func(context.Context, *mcp.ProgressNotificationClientRequest)
	// connects caps the connects in flight across servers (each server
	// gets its own cap under it: gateway.ServerConnectLimiter).
	connects *mcpool.ConnectLimiter
	// getGW returns the gateway once it serves (nil before): the servers'
	// sampling, elicitation, logs and resource updates go back to the
	// client of the call through it.
	getGW func() *gateway.Gateway
	// onListChanged is every Group's OnListChanged.
	onListChanged func(server, kind string)
	// metrics is /metrics' collector: the servers a reload adds are
	// exported too.
	metrics *mcpoolprom.Collector
	// keyed is the keyed pool exported under each passthrough server's
	// name (exportKeyed).
	keyed map[string]*mcpool.Keyed

	gw     *gateway.Gateway
	group  *mcpool.Group // nil while every server is in passthrough mode
	stops  []func()      // the auth helpers of every config loaded
	reload sync.Mutex    // one reload at a time; guards what follows

	// The running config.
	gc       *mcpool.GroupConfig
	gcg      *mcpool.GroupConfig // gc less its passthrough servers: the Group's
	settings config.Gateway
	naming   *mcpool.Naming
}

// prepare readies a loaded config's servers for the gateway: their
// credentials kept out of the command's messages, the catalog store, the
// progress relay, the mode advice (for the servers not in old, nil at
// start), their auth helpers, the Group's hooks.
func (r *reloader) prepare(gc *mcpool.GroupConfig, settings config.Gateway, old *mcpool.GroupConfig) error {
	servers := settings.Servers
	for i := range gc.Servers {
		sc := &gc.Servers[i]
		// The command's own errors never show the config's credentials.
		addConfigSecrets(&sc.Config) // redact.go
		configs := []*mcpool.Config{&sc.Config}
		for j := range sc.Replicas {
			addConfigSecrets(&sc.Replicas[j])
			configs = append(configs, &sc.Replicas[j])
		}
		limit := gateway.ServerConnectLimiter(sc.Config, r.connects)
		handlers := gateway.UpstreamHandlers(sc.Name, r.getGW)
		for _, c := range configs {
			c.OnProgress = r.relay
			c.ConnectLimiter = limit
			c.ClientHandlers = handlers
			if c.URL != "" {
				c.HTTPClient = gateway.RelayHTTPClient(c.HTTPClient, c.IdleConns())
			}
			if r.store != nil {
				// Replicas of one server list the same catalog: one key for all.
				c.CatalogStore, c.CatalogKey = r.store, "server:"+sc.Name
			}
		}
		if old != nil && slices.ContainsFunc(old.Servers, func(o mcpool.ServerConfig) bool { return o.Name == sc.Name }) {
			continue
		}
		if r.stateless && (servers[sc.Name].Mode == "" || servers[sc.Name].Mode == config.ModeIsolated) {
			r.log.Warn("server in isolated mode behind a stateless gateway: every request gets an upstream session of its own; use \"mode\": \"shared\" for servers that keep no per-session state, or sticky routing without --stateless", "server", sc.Name)
		} else if servers[sc.Name].Mode == "" {
			r.log.Info("server served in isolated mode (the default): each client gets its own upstream session; set \"mode\": \"shared\" in the gateway section if the server keeps no per-session state", "server", sc.Name)
		}
	}
	// The servers' "auth" objects; their OAuth sign-in URLs go to the log's stream.
	stop, err := configureGroupAuth(gc, r.stderr)
	if err != nil {
		return err
	}
	r.stops = append(r.stops, stop)
	gc.Logger = r.log
	gc.OnListChanged = r.onListChanged
	return nil
}

// stopAuth stops the auth helpers of every config loaded.
func (r *reloader) stopAuth() {
	for _, s := range r.stops {
		s()
	}
}

// run reloads on t's triggers (SIGHUP, and with --watch a change of the
// file) until ctx ends; the channel it returns is closed then.
func (r *reloader) run(ctx context.Context, t *reloadTriggers) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.hup:
				r.apply(ctx, "SIGHUP")
			case <-t.changed:
				r.apply(ctx, "file changed")
			}
		}
	}()
	return done
}

// apply reloads the file, or keeps the running config and logs one line.
func (r *reloader) apply(ctx context.Context, why string) {
	r.reload.Lock()
	defer r.reload.Unlock()
	keep := func(err error) {
		r.log.Error("reload failed: kept the running config", "reason", why, "error", err)
	}
	file, err := config.Load(r.path)
	if err != nil {
		keep(err)
		return
	}
	gc, settings := &file.Group, file.Gateway
	naming, err := gc.Naming()
	if err != nil {
		keep(fmt.Errorf("%s: %w", r.path, err))
		return
	}
	if err := r.prepare(gc, settings, r.gc); err != nil {
		keep(err)
		return
	}
	for _, w := range file.Warnings {
		r.log.Warn(w)
	}
	// Gateway-wide settings are the process's: they change on restart.
	var kept []string
	for _, c := range []struct {
		name string
		same bool
	}{
		{"maxInFlight", settings.MaxInFlight == r.settings.MaxInFlight},
		{"maxIsolatedSessions", settings.MaxIsolatedSessions == r.settings.MaxIsolatedSessions},
		{"queueWait", settings.QueueWait == r.settings.QueueWait},
		{"callTimeout", settings.CallTimeout == r.settings.CallTimeout},
		{"redis", settings.Redis == r.settings.Redis},
		{"stateless", settings.Stateless == r.settings.Stateless},
	} {
		if !c.same {
			kept = append(kept, "gateway."+c.name)
		}
	}
	if len(kept) > 0 {
		r.log.Warn("reload: these settings change only on restart; kept the running ones", "settings", kept)
	}

	gcg := gateway.WithoutPassthrough(gc, settings.Servers)
	var upd *mcpool.GroupUpdate
	made := false // the Group was made by this reload
	switch {
	case len(gcg.Servers) == 0 && r.group != nil:
		keep(errors.New("every server is in passthrough mode now: the gateway's own pools cannot all go while it runs; restart it"))
		return
	case r.group == nil && len(gcg.Servers) > 0:
		g, err := mcpool.NewGroup(*gcg)
		if err != nil {
			keep(err)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := g.Start(sctx); err != nil && ctx.Err() == nil {
			r.log.Warn("some servers did not start", "error", err)
		}
		cancel()
		r.group, made = g, true
	case r.group != nil:
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		upd, err = r.group.Update(sctx, *gcg)
		cancel()
		if upd == nil {
			keep(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("some servers did not start", "error", err)
		}
	}
	if upd != nil {
		r.metrics.SyncGroups() // count the new pools' calls from the first
	}
	if err := r.gw.Reload(ctx, gateway.GroupServers(r.group, gc, settings.Servers), naming); err != nil {
		if upd != nil && upd.Changed() {
			// Put the Group back as the gateway still serves it: its
			// handles of the servers just replaced move to the restored ones.
			if back, berr := r.group.Update(ctx, *r.gcg); back != nil {
				defer r.closeOld(back)
			} else {
				r.log.Warn("reload: restoring the servers", "error", berr)
			}
			r.closeOld(upd)
		}
		if made {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = r.group.Close(cctx)
			cancel()
			r.group = nil
		}
		keep(err)
		return
	}
	if upd != nil {
		r.closeOld(upd)
	}
	r.exportNew(made, gc)
	r.gc, r.gcg, r.settings, r.naming = gc, gcg, settings, naming
	r.log.Info("reloaded the config", "reason", why, "file", r.path)
}

// closeOld closes the pools of the servers an update removed or replaced:
// the gateway has drained the calls it routed to them.
func (r *reloader) closeOld(u *mcpool.GroupUpdate) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := u.Close(ctx); err != nil {
		r.log.Warn("reload: closing the servers removed or replaced", "error", err)
	}
}

// exportNew adds to /metrics what a reload made: the Group, when the
// reload made it (every server was in passthrough mode before), and the
// keyed pools of passthrough servers (exportKeyed).
func (r *reloader) exportNew(madeGroup bool, gc *mcpool.GroupConfig) {
	// Keyed pools first: a server that left passthrough mode for the
	// Group this reload made must have left the collector's names before
	// AddGroup checks them.
	if err := r.exportKeyed(gc); err != nil {
		r.log.Warn("reload: exporting a passthrough server's metrics", "error", err)
	}
	if madeGroup {
		if err := r.metrics.AddGroup(r.group); err != nil {
			r.log.Warn("reload: exporting the servers' metrics", "error", err)
		}
	}
}

// exportKeyed makes /metrics export the keyed pools of gc's passthrough
// servers as the gateway serves them now: a server removed, or replaced by
// a reload (a new keyed pool, the old one closed), is no longer read from
// its old pool, and its new pool is exported under its name.
func (r *reloader) exportKeyed(gc *mcpool.GroupConfig) error {
	now := map[string]*mcpool.Keyed{}
	for _, sc := range gc.Servers {
		if k := r.gw.Keyed(sc.Name); k != nil {
			now[sc.Name] = k
		}
	}
	if r.keyed == nil {
		r.keyed = map[string]*mcpool.Keyed{}
	}
	for name, k := range r.keyed {
		if now[name] != k {
			r.metrics.Remove(name)
			delete(r.keyed, name)
		}
	}
	var errs []error
	for name, k := range now {
		if r.keyed[name] == k {
			continue
		}
		if err := r.metrics.AddKeyed(name, k); err != nil {
			errs = append(errs, fmt.Errorf("server %q: %w", name, err))
			continue
		}
		r.keyed[name] = k
	}
	return errors.Join(errs...)
}

// boundListen is the --listen address with the port the listener got (for
// port 0), keeping the host as written: clients reach the gateway by the
// name the user gave ("localhost"), and the default audience, the
// Protected Resource Metadata's resource, must be that URL (RFC 9728
// section 3.3: the client checks that it matches the URL it used).
func boundListen(listen string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(listen)
	_, port, perr := net.SplitHostPort(bound.String())
	if err != nil || perr != nil || host == "" {
		return bound.String()
	}
	return net.JoinHostPort(host, port)
}
