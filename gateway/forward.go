package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Forwarding to the owning replica. An isolated server whose upstream
// session cannot travel in a session id (stdio: a process on one machine;
// NewTransport; an HTTP server that keeps no session or was not reachable
// at initialize) keeps it on the replica that created the downstream
// session. With Options.AdvertiseURL set, that replica seals its address
// (encrypted) in the ids of the sessions that have such servers, and a
// replica that gets a request of such a session proxies it whole to the
// owner (streams flushed as they come), over an internal hop authenticated
// by an HMAC-SHA256, under a key derived from the session key, of the
// request's method, path, session id and a timestamp. The owner serves a
// hop as any request (the caller's Authorization is checked again, and the
// session's identity binding) and never forwards it again. When the owner
// does not answer (connection refused, no connection within
// hopDialTimeout) or is draining (503), the replica that took the request
// serves the session itself from then on: calls to the servers whose
// state was on the owner get CodeSessionLost, which tells the client to
// start a new session; other calls succeed.

const (
	// hopHeader carries a forwarded request's authentication:
	// UNIX-SECONDS "." base64url(HMAC).
	hopHeader = "Mcpool-Hop"
	// hopMaxSkew bounds the age of a hop (and the replicas' clock skew).
	hopMaxSkew = 30 * time.Second
	// hopDialTimeout bounds the connect to the owner: past it, the owner
	// counts as gone.
	hopDialTimeout = 2 * time.Second
	// statusForward is lookup's answer for a session to forward.
	statusForward = -1
)

// errOwnerGone: the owning replica did not take a forwarded request (no
// connection, or it is draining); the request was not served there.
var errOwnerGone = errors.New("the gateway replica holding the session did not take the request")

// forwarder proxies requests to the replicas owning their sessions.
type forwarder struct {
	self      string // Options.AdvertiseURL: sessions naming it are served here
	transport *http.Transport
	errLog    *log.Logger
}

func newForwarder(g *Gateway) *forwarder {
	d := &net.Dialer{Timeout: hopDialTimeout, KeepAlive: 30 * time.Second}
	return &forwarder{
		self: g.opts.AdvertiseURL,
		transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil && ctx.Err() == nil {
					return nil, fmt.Errorf("%w: %w", errOwnerGone, err)
				}
				return c, err
			},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		errLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// advertiseURL checks and normalizes Options.AdvertiseURL: an http(s) URL
// with a host; an empty path means /mcp.
func advertiseURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("gateway: AdvertiseURL %q: want this replica's MCP endpoint as other replicas reach it, as http://HOST:PORT/mcp", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/mcp"
	}
	return u.String(), nil
}

// ownerURL is the address a new session's id names as its owner: this
// replica's, when the session has isolated servers whose upstream sessions
// do not travel in the id (ups are those that do); "" otherwise (its
// requests are never forwarded).
func (g *Gateway) ownerURL(ups map[string]*upstreamRef) string {
	if g.opts.AdvertiseURL == "" {
		return ""
	}
	for _, srv := range g.set.Load().servers {
		if srv.Mode == ModeIsolated && ups[srv.name] == nil {
			return g.opts.AdvertiseURL
		}
	}
	return ""
}

// warnUnforwarded says, when session ids are portable but no AdvertiseURL
// is set, which isolated servers keep their state on one replica.
func (g *Gateway) warnUnforwarded() {
	if g.port == nil || g.opts.AdvertiseURL != "" {
		return
	}
	var names []string
	for _, srv := range g.set.Load().servers {
		if srv.Mode == ModeIsolated && !g.resumable(srv) {
			names = append(names, srv.name)
		}
	}
	if len(names) > 0 {
		g.log.Warn("these isolated servers keep each session's upstream session on the replica that created the session; "+
			"on other replicas their calls fail with session lost unless AdvertiseURL (--advertise-url) is set, so that those replicas forward the session's requests",
			"servers", strings.Join(names, ","))
	}
}

// hopMAC is the MAC of a hop of the request (method, path) of session id
// at ts (unix seconds) under key.
func hopMAC(key []byte, method, path, id string, ts int64) []byte {
	m := hmac.New(sha256.New, key)
	_, _ = io.WriteString(m, method+"\n"+path+"\n"+id+"\n"+strconv.FormatInt(ts, 10))
	return m.Sum(nil)
}

// signHop returns the hop header of a forwarded request.
func (p *portable) signHop(method, path, id string) string {
	ts := p.codec.now().Unix()
	return strconv.FormatInt(ts, 10) + "." + base64.RawURLEncoding.EncodeToString(hopMAC(p.codec.keys[0].hop, method, path, id, ts))
}

// validHop reports whether v, r's hop header, was made by a replica sharing
// a session key, for this request, within hopMaxSkew.
func (p *portable) validHop(r *http.Request, v string) bool {
	tsText, macText, ok := strings.Cut(v, ".")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if !ok || err != nil {
		return false
	}
	if d := p.codec.now().Sub(time.Unix(ts, 0)); d > hopMaxSkew || d < -hopMaxSkew {
		return false
	}
	mac, err := base64.RawURLEncoding.DecodeString(macText)
	if err != nil {
		return false
	}
	id := r.Header.Get("Mcp-Session-Id")
	for _, k := range p.codec.keys {
		if hmac.Equal(mac, hopMAC(k.hop, r.Method, r.URL.Path, id, ts)) {
			return true
		}
	}
	return false
}

// checkHop refuses a request whose hop header is not a replica's (403): a
// client cannot pass for a replica forwarding a session. Requests without
// the header pass at the cost of a header lookup.
func (g *Gateway) checkHop(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(hopHeader); v != "" && (g.port == nil || !g.port.validHop(r, v)) {
			http.Error(w, "Forbidden: invalid "+hopHeader+" header (only the gateway's replicas set it, for each other)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// forward proxies r, a request of session id, to owner, and reports
// whether it was answered. False means the owner did not take it (gone or
// draining) and nothing was written: the caller serves it here, with r's
// body as it was.
func (p *portable) forward(w http.ResponseWriter, r *http.Request, owner, id string) bool {
	target, err := url.Parse(owner)
	if err != nil {
		return false
	}
	var body []byte
	if r.Method == http.MethodPost && r.Body != nil {
		if body, err = io.ReadAll(r.Body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
			} else {
				http.Error(w, "failed to read body", http.StatusBadRequest)
			}
			return true
		}
		defer func() { r.Body = io.NopCloser(bytes.NewReader(body)) }() // for the caller, when not taken
	}
	defer func() {
		if p.g.ctx.Err() != nil { // closed: keep no connection
			p.fwd.transport.CloseIdleConnections()
		}
	}()
	var gone, streaming bool
	rp := &httputil.ReverseProxy{
		Transport: p.fwd.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: target.Scheme, Host: target.Host, Path: target.Path, RawPath: target.RawPath}
			pr.Out.Host = ""
			if body != nil {
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
				pr.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}
			pr.Out.Header.Set(hopHeader, p.signHop(pr.Out.Method, target.Path, id))
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusServiceUnavailable {
				return errOwnerGone // draining: the session's state goes with it
			}
			streaming = resp.StatusCode == http.StatusOK
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errOwnerGone) {
				gone = true
				return
			}
			if r.Context().Err() != nil {
				return // the client left
			}
			p.g.log.Debug("forwarding a session's request to its replica failed", "owner", owner, "error", err)
			writeLost(w, body, fmt.Sprintf("the gateway replica holding this session's server-side state (%s) did not answer", owner))
		},
		ErrorLog: p.fwd.errLog,
	}
	if r.Method != http.MethodGet {
		rp.ServeHTTP(w, r)
		return !gone
	}
	// A GET stream, stopped by a drain of this replica like its own.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s := &getStream{cancel: cancel}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "gateway is shutting down: reconnect to another gateway", http.StatusServiceUnavailable)
		return true
	}
	p.streams[s] = struct{}{}
	p.mu.Unlock()
	stopped := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.streams, s)
		return s.stopped
	}
	var wasStopped bool
	func() {
		defer func() {
			wasStopped = stopped()
			// The proxy aborts the response when its copy fails (here,
			// the stream stopped): a stopped stream ends with a retry hint.
			if v := recover(); v != nil && (v != http.ErrAbortHandler || !wasStopped || r.Context().Err() != nil) {
				panic(v)
			}
		}()
		rp.ServeHTTP(w, r.WithContext(ctx))
	}()
	if wasStopped && streaming && r.Context().Err() == nil {
		_, _ = fmt.Fprintf(w, "event: close\nretry: %d\ndata: \n\n", streamRetry.Milliseconds())
		_ = http.NewResponseController(w).Flush()
	}
	return !gone
}

// writeLost answers a request of a session whose server-side state is
// lost: a JSON-RPC request gets CodeSessionLost, anything else 502.
func writeLost(w http.ResponseWriter, body []byte, reason string) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(body, &msg) != nil || len(msg.ID) == 0 || msg.Method == "" {
		http.Error(w, reason+": start a new session (initialize again)", http.StatusBadGateway)
		return
	}
	e := &jsonrpc.Error{Code: CodeSessionLost, Message: reason + ": the session's state on it (isolated servers) is lost; start a new session (initialize again)"}
	e.Data, _ = json.Marshal(ErrorData{Reason: "session_lost"})
	raw, err := json.Marshal(e)
	if err != nil {
		http.Error(w, reason, http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":%s}`, msg.ID, raw)
}
