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
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
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
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	verbose := fs.Bool("verbose", false, "log debug events (pools, sessions)")
	drain := fs.Duration("drain-timeout", gateway.DefaultDrainTimeout, "on SIGTERM, how long calls in flight may finish")
	sessionsOnly := fs.Bool("sessions-only", false, "serve 2025-11-25 sessions only: 2026-07-28 clients fall back to initialize (cheaper per call than stateless requests)")
	maxInFlight := fs.Int("max-in-flight", 0, "calls in flight across the gateway (default: the config's, else 256)")
	redisURL := fs.String("redis", "", "share tool, prompt and resource catalogs with other gateway replicas through this\n"+
		"Redis (redis://HOST:PORT/DB; default $"+redisEnv+", then the config's gateway.redis).\n"+
		"Implies --stateless unless --stateless=false")
	stateless := fs.Bool("stateless", false, "serve every request on its own (no Mcp-Session-Id), so that any replica behind a\n"+
		"load balancer can answer it; isolated servers then get an upstream session per request")
	rest, err := parseFlags(fs, args, "gateway --config FILE [--listen ADDR | --stdio] [--token T]\n\n"+
		"Environment: $GOGC sets Go's garbage collector target; unset, the gateway uses 400\n"+
		"(Go's default is 100): it decodes every message twice, as server and as client, with\n"+
		"the SDK's 32 KiB decoder buffer, and 400 buys 1.2-1.7x the calls/s for about 20 MiB\n"+
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
	defer tuneGatewayGC()() // gc.go
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	if *logFormat == "json" {
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	}

	var ln net.Listener
	if !*stdio {
		host, _, err := net.SplitHostPort(*listen)
		if err != nil {
			return usageErrorf("--listen %q: %v", *listen, err)
		}
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && *token == "" {
			return usageErrorf("--listen %s is not a loopback address: set --token or $%s so that only your clients get in", *listen, tokenEnv)
		}
	}

	file, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	for _, w := range file.Warnings {
		log.Warn(w)
	}
	gc, settings := &file.Group, file.Gateway
	servers := settings.Servers
	for i := range gc.Servers {
		// The command's own errors never show the config's credentials.
		addConfigSecrets(&gc.Servers[i].Config) // redact.go
		for j := range gc.Servers[i].Replicas {
			addConfigSecrets(&gc.Servers[i].Replicas[j])
		}
	}
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
		if !statelessSet {
			*stateless = true
		}
	}
	if !statelessSet && settings.Stateless {
		*stateless = true
	}
	if *stateless && *sessionsOnly {
		return usageErrorf("--stateless and --sessions-only exclude each other")
	}

	// The gateway relays progress and list_changed from the pools, and is
	// made after them: the hooks reach it through gw.
	var gw *gateway.Gateway
	ready := make(chan struct{})
	relay := func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
		select {
		case <-ready:
			gw.OnProgress(ctx, r)
		default:
		}
	}
	getGW := func() *gateway.Gateway {
		select {
		case <-ready:
			return gw
		default:
			return nil
		}
	}
	for i := range gc.Servers {
		sc := &gc.Servers[i]
		sc.Config.OnProgress = relay
		// Sampling, elicitation, logs and resource updates go back to the
		// client of the call (see the gateway package).
		sc.Config.ClientHandlers = gateway.UpstreamHandlers(sc.Name, getGW)
		if sc.Config.URL != "" {
			sc.Config.HTTPClient = gateway.RelayHTTPClient(sc.Config.HTTPClient, max(sc.Config.MaxSessions, 1)*(max(sc.Config.MaxCallsPerSession, 1)+1))
		}
		for j := range sc.Replicas {
			sc.Replicas[j].OnProgress = relay
			sc.Replicas[j].ClientHandlers = sc.Config.ClientHandlers
			if sc.Replicas[j].URL != "" {
				sc.Replicas[j].HTTPClient = gateway.RelayHTTPClient(sc.Replicas[j].HTTPClient, max(sc.Replicas[j].MaxSessions, 1)*(max(sc.Replicas[j].MaxCallsPerSession, 1)+1))
			}
		}
		if *stateless && (servers[sc.Name].Mode == "" || servers[sc.Name].Mode == config.ModeIsolated) {
			log.Warn("server in isolated mode behind a stateless gateway: every request gets an upstream session of its own; use \"mode\": \"shared\" for servers that keep no per-session state, or sticky routing without --stateless", "server", sc.Name)
		} else if servers[sc.Name].Mode == "" {
			log.Info("server served in isolated mode (the default): each client gets its own upstream session; set \"mode\": \"shared\" in the gateway section if the server keeps no per-session state", "server", sc.Name)
		}
	}
	// The servers' "auth" objects; their OAuth sign-in URLs go to the log's stream.
	stopAuth, err := configureGroupAuth(gc, stderr)
	if err != nil {
		return err
	}
	defer stopAuth()
	gc.Logger = log
	gc.OnListChanged = func(server, kind string) {
		select {
		case <-ready:
			gw.ListChanged(server, kind)
		default:
		}
	}
	// Passthrough servers dial with each client's credentials, through the
	// gateway's keyed pools: the Group, which dials with the gateway's own,
	// leaves them out.
	var group *mcpool.Group
	if gcg := gateway.WithoutPassthrough(gc, servers); len(gcg.Servers) > 0 {
		group, err = mcpool.NewGroup(*gcg)
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), *drain+10*time.Second)
			defer cancel()
			if err := group.Close(cctx); err != nil {
				log.Warn("closing upstream sessions", "error", err)
			}
		}()
		startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := group.Start(startCtx); err != nil && ctx.Err() == nil {
			// Servers that did not start are reported and retried in the
			// background; the others serve.
			log.Warn("some servers did not start", "error", err)
		}
		cancel()
	}
	if ctx.Err() != nil {
		log.Info("signal received while starting: stopped")
		return nil
	}

	opts := gateway.Options{
		Servers:             gateway.GroupServers(group, gc, servers),
		Naming:              naming,
		MaxInFlight:         settings.MaxInFlight,
		MaxIsolatedSessions: settings.MaxIsolatedSessions,
		QueueWait:           settings.QueueWait,
		CallTimeout:         settings.CallTimeout,
		Token:               *token,
		SessionsOnly:        *sessionsOnly,
		Stateless:           *stateless,
		DrainTimeout:        *drain,
		Logger:              log,
	}
	// /metrics: the pools of every server (the Group's, and the keyed pools
	// of passthrough servers; isolated sessions' pools are seen on the
	// status page), the gateway's own figures, and the process.
	reg := prometheus.NewRegistry()
	metrics := mcpoolprom.New(mcpoolprom.Options{})
	if group != nil {
		if err := metrics.AddGroup(group); err != nil {
			return err
		}
	}
	reg.MustRegister(metrics, gatewayCollector{gw: &gw}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if *maxInFlight > 0 {
		opts.MaxInFlight = *maxInFlight
	}
	gw, err = gateway.New(opts)
	if err != nil {
		return err
	}
	// Passthrough servers' figures come from the gateway's keyed pools.
	for _, s := range opts.Servers {
		if k := gw.Keyed(s.Name); k != nil {
			if err := metrics.AddKeyed(s.Name, k); err != nil {
				_ = gw.Close(context.Background())
				return err
			}
		}
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
	shutdown := func() error {
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

	ln, err = net.Listen("tcp", *listen)
	if err != nil {
		_ = shutdown()
		return err
	}
	srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving MCP", "url", fmt.Sprintf("http://%s/mcp", ln.Addr()), "status", fmt.Sprintf("http://%s/", ln.Addr()), "servers", len(opts.Servers))
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
