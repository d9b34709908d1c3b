package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Handler returns the gateway's HTTP handler:
//
//   - /mcp: the MCP endpoint (streamable HTTP). Requests that carry
//     Mcp-Protocol-Version 2026-07-28 or later are served statelessly
//     (no Mcp-Session-Id; a closed request cancels its call); all others
//     get 2025-11-25-era sessions, which idle out after SessionIdleTimeout
//     (unless Options.Stateless, which serves every request on its own).
//     With Options.Token set, every request needs "Authorization: Bearer
//     TOKEN" (401 otherwise). A POST beyond MaxRequests gets 429 with
//     Retry-After, and any request while draining 503, before its body is
//     read.
//   - /healthz: 200 while the process serves.
//   - /readyz: 200 when ready for calls, 503 while draining.
//   - /: the status page; /status.json: its figures.
//   - /metrics: Options.Metrics, when set.
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
	mux := http.NewServeMux()
	mux.Handle("/mcp", g.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Mcp-Protocol-Version"); g.opts.Stateless || v >= "2026-07-28" && !g.opts.SessionsOnly {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})))
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
	mux.HandleFunc("/status.json", g.serveStatusJSON)
	mux.HandleFunc("/{$}", g.serveStatusPage)
	// /metrics: the Prometheus collector's handler, when the caller gives one.
	if g.opts.Metrics != nil {
		mux.Handle("/metrics", g.opts.Metrics)
	}
	return mux
}

// guard checks the token, refuses requests while draining and POSTs beyond
// MaxRequests, all before the body is read, and counts the POSTs it lets
// through so that Drain can wait for their answers to be written.
func (g *Gateway) guard(next http.Handler) http.Handler {
	var want [32]byte
	if g.opts.Token != "" {
		want = sha256.Sum256([]byte(g.opts.Token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.opts.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			// Digests have one length, so the compare takes one time
			// whatever the token sent.
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mcpool-gateway"`)
				http.Error(w, "unauthorized: send Authorization: Bearer with the gateway's token", http.StatusUnauthorized)
				return
			}
		}
		if g.draining.Load() {
			// Connection: close sheds the refused client's connection (and
			// its goroutine and buffers) instead of keeping it alive.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			http.Error(w, "gateway is shutting down: retry on another gateway", http.StatusServiceUnavailable)
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

// ServeStdio serves one downstream session over stdin and stdout until the
// client closes stdin or ctx ends. Ending ctx ends the session and cancels
// its calls: for a graceful stop, call Drain first, then end ctx.
func (g *Gateway) ServeStdio(ctx context.Context) error {
	return g.Serve(ctx, &mcp.StdioTransport{})
}

// Serve serves one downstream session over t (an in-memory transport in
// tests, say) until it ends or ctx does.
func (g *Gateway) Serve(ctx context.Context, t mcp.Transport) error {
	return g.mcp.Run(ctx, countingTransport{t, &g.answers})
}
