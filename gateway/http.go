package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcpool/mcpool/internal/stdio"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Handler returns the gateway's HTTP handler:
//
//   - /mcp: the MCP endpoint (streamable HTTP). Requests that carry
//     Mcp-Protocol-Version 2026-07-28 or later are served statelessly
//     (no Mcp-Session-Id; a closed request cancels its call); all others
//     get 2025-11-25-era sessions, which idle out after SessionIdleTimeout
//     (unless Options.Stateless, which serves every request on its own).
//     With Options.SessionKeys, session ids carry their state and any
//     replica sharing the keys serves any session (404 for an id that is
//     not the deployment's, 403 for another caller's); a session whose
//     isolated servers' state lives on another replica (Options.AdvertiseURL)
//     is forwarded there, and a request with a Mcpool-Hop header that no
//     replica made gets 403.
//     A tools/call without a progress token is answered with a single
//     application/json response in either era (a body over 64 KiB may get
//     a stream); one with a progress token gets a text/event-stream that
//     carries its notifications/progress.
//     With Options.Token set, every request needs "Authorization: Bearer
//     TOKEN" (401 otherwise); with Options.Auth, a valid access token for
//     the gateway (401 with WWW-Authenticate pointing at the Protected
//     Resource Metadata, or 403 insufficient_scope). A POST beyond MaxRequests gets 429 with
//     Retry-After, and any request while draining 503, before its body is
//     read.
//   - /healthz: 200 while the process serves.
//   - /readyz: 200 when ready for calls, 503 while draining.
//   - /: the status page; /status.json: its figures.
//   - /metrics: Options.Metrics, when set.
//   - /.well-known/oauth-protected-resource and its /mcp-suffixed form: the
//     Protected Resource Metadata (RFC 9728), with Options.Auth.
//
// With Options.Token (or Options.Auth) set, /, /status.json and /metrics
// need the same Authorization header as /mcp (a Prometheus scrape job's
// bearer_token, curl -H); /healthz and /readyz stay open for probes.
//
// Every path refuses, with 403, what a web page could send through a
// visitor's browser (the MCP transports' "Security Warning": servers must
// validate Origin): a request that reached a loopback address naming a
// host that is not loopback (DNS rebinding), and a cross-origin POST,
// PUT, PATCH or DELETE by its Sec-Fetch-Site or Origin header
// ([net/http.CrossOriginProtection]). Clients that are not browsers send
// neither header and are not affected.
func (g *Gateway) Handler() http.Handler {
	getServer := func(*http.Request) *mcp.Server { return g.mcp }
	stateful := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		SessionTimeout: g.opts.SessionIdleTimeout,
		Logger:         sdkLogger(g.log),
	})
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
		Logger:                       sdkLogger(g.log),
	})
	statelessJSON := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		JSONResponse:                 true,
		PropagateRequestCancellation: true,
		Logger:                       sdkLogger(g.log),
	})
	mux := http.NewServeMux()
	g.serveMetadata(mux) // auth.go: Protected Resource Metadata with Options.Auth
	mux.Handle("/mcp", g.authorized(g.guard(g.checkHop(g.relayHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.stateless(r) { // fastpath.go
			r, stream := needsStream(r) // response_kind.go
			if stream {
				stateless.ServeHTTP(w, r)
			} else {
				statelessJSON.ServeHTTP(w, r)
			}
			return
		}
		if g.port != nil {
			g.port.ServeHTTP(w, r) // portable.go
			return
		}
		stateful.ServeHTTP(w, r)
	}))))))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !g.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/status.json", g.authorized(http.HandlerFunc(g.serveStatusJSON)))
	mux.Handle("/{$}", g.authorized(http.HandlerFunc(g.serveStatusPage)))
	// /metrics: the Prometheus collector's handler, when the caller gives one.
	if g.opts.Metrics != nil {
		mux.Handle("/metrics", g.authorized(g.opts.Metrics))
	}
	return browserSafe(mux)
}

// browserSafe refuses requests a web page could make through a browser
// on loopback or cross-origin (see Handler), on every path: the status
// page and /metrics name the servers, their endpoints and their errors.
func browserSafe(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Forbidden: cross-origin request from a browser (Origin "+strconv.Quote(r.Header.Get("Origin"))+
			"); the gateway serves MCP clients, not web pages", http.StatusForbidden)
	}))
	next = cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r) { // fastpath.go: the SDK's rule, on every path
			http.Error(w, "Forbidden: invalid Host header "+strconv.Quote(r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseDraining answers a request that came while the gateway drains: 503
// with Retry-After, which a load balancer retries on another replica.
// Connection: close sheds the refused client's connection (and its
// goroutine and buffers) instead of keeping it alive.
func refuseDraining(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "1")
	http.Error(w, "gateway is shutting down: retry on another gateway", http.StatusServiceUnavailable)
}

// guard checks the token, refuses requests while draining and POSTs beyond
// MaxRequests, all before the body is read, and counts the POSTs it lets
// through so that Drain can wait for their answers to be written.
func (g *Gateway) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.checkToken(w, r) {
			return
		}
		if g.draining.Load() {
			refuseDraining(w)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Mcp-Method") == "subscriptions/listen" {
			// Streams (GET, subscriptions) live as long as the session:
			// they are not requests in flight.
			next.ServeHTTP(w, r)
			return
		}
		if n := g.requests.Add(1); n > int64(g.opts.MaxRequests) {
			g.requests.Add(-1)
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			http.Error(w, "gateway overloaded: too many requests in flight; retry after 1s with backoff", http.StatusTooManyRequests)
			return
		}
		defer g.requests.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// authorized lets a request through only with the token (when one is set)
// or, with Options.Auth, a valid access token (401 or 403 otherwise).
func (g *Gateway) authorized(next http.Handler) http.Handler {
	if g.opts.Auth != nil {
		return g.opts.Auth.Middleware(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.checkToken(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// checkToken reports whether r carries the gateway's token (or none is
// set); if not, it answers 401. The scheme name is matched without regard
// to case (RFC 7235 section 2.1).
func (g *Gateway) checkToken(w http.ResponseWriter, r *http.Request) bool {
	if g.opts.Token == "" {
		return true
	}
	want := sha256.Sum256([]byte(g.opts.Token))
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	// Digests have one length, so the compare takes one time whatever the
	// token sent.
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpool-gateway"`)
		http.Error(w, "unauthorized: send Authorization: Bearer with the gateway's token", http.StatusUnauthorized)
		return false
	}
	return true
}

// ServeStdio serves one downstream session over stdin and stdout until the
// client closes stdin or ctx ends. Ending ctx ends the session and cancels
// its calls: for a graceful stop, call Drain first, then end ctx. When
// stdin and stdout are pipes or sockets they are put in non-blocking mode
// and read through the runtime's poller: a blocking read of stdin can hold
// a garbage collection's stop of the world, and so every call, until the
// client writes again.
func (g *Gateway) ServeStdio(ctx context.Context) error {
	return g.Serve(ctx, stdio.Transport())
}

// Serve serves one downstream session over t (an in-memory transport in
// tests, say) until it ends or ctx does.
func (g *Gateway) Serve(ctx context.Context, t mcp.Transport) error {
	var conn *countingConn
	err := g.mcp.Run(ctx, countingTransport{Transport: t, c: &g.answers, conn: &conn})
	if conn != nil {
		conn.settle()
	}
	return err
}
