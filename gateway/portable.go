package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// CodeSessionLost: the downstream session's server-side state for a server
// in ModeIsolated is not available: it lives on another gateway replica (or
// died with it), or the server ended the session's upstream session (an
// HTTP 404). The call was not run: start a new session (initialize again)
// and repeat it there, or route a session's requests to the replica that
// created it.
const CodeSessionLost = -32045

// streamRetry is the reconnection delay a draining replica sends on the GET
// streams it stops, in the SSE retry field: the client reconnects after it,
// through the load balancer, to another replica.
const streamRetry = time.Second

// portable serves 2025-11-25-era sessions whose ids carry their state (see
// session_id.go), so that any replica sharing the key serves any session:
// a replica that gets a valid id it does not hold adopts the session,
// restoring the server session from the id.
type portable struct {
	g     *Gateway
	codec *sessionCodec
	fwd   *forwarder // forward.go

	mu       sync.Mutex
	sessions map[string]*portableSession
	bySS     map[*mcp.ServerSession]*portableSession
	streams  map[*getStream]struct{}
	stopped  bool             // draining: GET streams are refused and stopped
	closed   map[string]int64 // digests of ids deleted here -> their expiry
	primeID  atomic.Int64     // ids of the GET streams' priming events
	// applying: *mcp.ServerSession -> the mcp.LoggingLevel another
	// replica's relay is setting on it (loglevel.go).
	applying sync.Map
	levelSeq atomic.Int64 // ids of those requests
}

// portableSession is one session held by this replica: created here or
// adopted.
type portableSession struct {
	ready    chan struct{} // closed when ss (or err) is set
	ss       *mcp.ServerSession
	t        *mcp.StreamableServerTransport
	err      error
	identity [16]byte
	key      int
	expiry   int64
	adopted  bool // restored from its id, not created by this process
	// ownerGone: the session has an owner (forward.go) and was adopted:
	// the upstream sessions the owner held are not available.
	ownerGone atomic.Bool
	digest    string // of the id, in the relay's keys
	// ups are the isolated upstream sessions the id carries, by server
	// name (resume.go); read-only once ready is closed.
	ups map[string]*upstreamRef

	mu    sync.Mutex
	refs  int // requests and GET streams open: the idle timer is paused
	timer *time.Timer
}

// getStream is one open GET stream, stopped by a drain.
type getStream struct {
	cancel  context.CancelFunc
	stopped bool // by a drain: write the retry hint
}

func newPortable(g *Gateway) (*portable, error) {
	codec, err := newSessionCodec(g.opts.SessionKeys, g.opts.SessionMaxAge)
	if err != nil {
		return nil, fmt.Errorf("gateway: SessionKeys: %w", err)
	}
	return &portable{
		g: g, codec: codec, fwd: newForwarder(g),
		sessions: map[string]*portableSession{},
		bySS:     map[*mcp.ServerSession]*portableSession{},
		streams:  map[*getStream]struct{}{},
		closed:   map[string]int64{},
	}, nil
}

// initPortable makes the portable session store when SessionKeys are set.
func (g *Gateway) initPortable() error {
	if len(g.opts.SessionKeys) == 0 {
		return nil
	}
	p, err := newPortable(g)
	if err != nil {
		return err
	}
	g.port = p
	return nil
}

// stopStreams ends every GET stream with a retry hint, so that clients
// reconnect to another replica; later GETs are refused by the HTTP guard.
func (g *Gateway) stopStreams() {
	p := g.port
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stopped = true
	streams := make([]*getStream, 0, len(p.streams))
	for s := range p.streams {
		s.stopped = true
		streams = append(streams, s)
	}
	p.mu.Unlock()
	for _, s := range streams {
		s.cancel()
	}
	if len(streams) > 0 {
		g.log.Info("draining: GET streams stopped; their clients reconnect to other replicas", "streams", len(streams), "retry", streamRetry)
	}
}

// isolatedHome returns the upstream session of srv that ss's id carries
// (nil: none, connect one as usual), or the session-lost error of a call
// whose upstream state is not here: the session was adopted from another
// replica and srv's upstream session did not travel in its id (a stdio
// server, or one whose session could not be taken at initialize), or the
// upstream ended the session it carries.
func (g *Gateway) isolatedHome(srv *server, ss *mcp.ServerSession) (*upstreamRef, error) {
	p := g.port
	if p == nil || ss == nil {
		return nil, nil
	}
	p.mu.Lock()
	e := p.bySS[ss]
	p.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	if ref := e.ups[srv.name]; ref != nil {
		if ref.lost.Load() {
			return nil, sessionLost(srv, "the server ended this session's upstream session (404)")
		}
		return ref, nil
	}
	if e.ownerGone.Load() {
		return nil, sessionLost(srv, "its upstream session, on the gateway replica that created this session, is gone "+
			"(that replica stopped or is draining, or the session idled out there)")
	}
	if !e.adopted {
		return nil, nil
	}
	return nil, sessionLost(srv, "this session's state lives on the gateway replica that created it, "+
		"which did not take this request (it is gone, or the load balancer routed elsewhere); "+
		"set AdvertiseURL (--advertise-url) on every replica, so that the others forward its requests there, "+
		"or route each session's requests to the replica that created it")
}

// ServeHTTP serves /mcp for 2025-11-25-era clients.
func (p *portable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The SDK handler's checks, which this one stands in for: the body's
	// size, the protocol version. (DNS rebinding is refused before any
	// handler: http.go's browserSafe.)
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, mcp.DefaultMaxRequestBodyBytes)
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(mcp.SupportedProtocolVersions(), v) {
		http.Error(w, "Bad Request: Unsupported protocol version (supported versions: "+strings.Join(mcp.SupportedProtocolVersions(), ",")+")", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if !acceptsStream(r) {
			http.Error(w, "Accept must contain 'text/event-stream' for GET requests", http.StatusBadRequest)
			return
		}
	case http.MethodPost:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
			return
		}
		if !acceptsStream(r) || !acceptsJSON(r) {
			http.Error(w, "Accept must contain both 'application/json' and 'text/event-stream'", http.StatusBadRequest)
			return
		}
	case http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		if r.Method != http.MethodPost {
			http.Error(w, "Bad Request: "+r.Method+" requires an Mcp-Session-Id header", http.StatusBadRequest)
			return
		}
		p.create(w, r)
		return
	}
	identity := sessionOwner(r)
	deleting := r.Method == http.MethodDelete
	// A hop (checked by checkHop) is served here, never forwarded again.
	e, status, owner := p.lookup(r.Context(), id, identity, deleting, r.Header.Get(hopHeader) == "")
	if status == statusForward {
		if p.forward(w, r, owner, id) { // forward.go
			return
		}
		// The owner is gone: this replica serves the session from now on.
		e, status, _ = p.lookup(r.Context(), id, identity, deleting, false)
	}
	switch status {
	case http.StatusOK:
	case http.StatusNoContent: // DELETE of a session this replica does not hold
		w.WriteHeader(http.StatusNoContent)
		return
	case http.StatusForbidden:
		http.Error(w, "session belongs to another caller: session ids do not stand in for credentials", http.StatusForbidden)
		return
	default:
		http.Error(w, "session not found: start a new session with initialize", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodDelete:
		p.deleted(id, e.expiry)
		p.g.endUpstreams(e.ss, e.ups) // resume.go
		_ = e.ss.Close()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		p.serveGET(w, r, e)
	default:
		e.hold()
		defer e.release(p.g.opts.SessionIdleTimeout)
		e.t.ServeHTTP(w, r)
	}
}

// lookup returns the session id names, adopting it when this replica does
// not hold it. The status is 200, 404 (not ours, expired), 403 (another
// caller's), for a DELETE of a valid id not held here 204, or, when
// mayForward and another replica owns the session (forward.go),
// statusForward with the owner's address.
func (p *portable) lookup(ctx context.Context, id, identity string, deleting, mayForward bool) (*portableSession, int, string) {
	p.mu.Lock()
	e := p.sessions[id]
	p.mu.Unlock()
	if e != nil {
		<-e.ready
		if e.err != nil {
			return nil, http.StatusNotFound, ""
		}
		d := p.codec.identityDigest(e.key, identity)
		if subtle.ConstantTimeCompare(d[:], e.identity[:]) != 1 {
			return nil, http.StatusForbidden, ""
		}
		if p.codec.now().Unix() >= e.expiry {
			_ = e.ss.Close()
			return nil, http.StatusNotFound, ""
		}
		return e, http.StatusOK, ""
	}
	cl, err := p.codec.open(id)
	if err != nil {
		return nil, http.StatusNotFound, ""
	}
	if !p.codec.boundTo(&cl, identity) {
		return nil, http.StatusForbidden, ""
	}
	if mayForward && cl.origin != p.codec.origin {
		// Before asking the store: the owner knows whether it was deleted.
		if owner := cl.owner(); owner != "" && owner != p.fwd.self {
			return nil, statusForward, owner
		}
	}
	if p.wasDeleted(ctx, id) {
		return nil, http.StatusNotFound, ""
	}
	if deleting {
		p.deleted(id, cl.expiry)
		if _, ups, err := cl.restore(); err == nil {
			p.g.endUpstreams(nil, ups) // resume.go
		}
		return nil, http.StatusNoContent, ""
	}
	e, status := p.adopt(id, &cl)
	return e, status, ""
}

// adopt restores the session of a valid id on this replica. Concurrent
// requests for one id share one adoption.
func (p *portable) adopt(id string, cl *sessionClaims) (*portableSession, int) {
	p.mu.Lock()
	if e := p.sessions[id]; e != nil {
		p.mu.Unlock()
		<-e.ready
		if e.err != nil {
			return nil, http.StatusNotFound
		}
		return e, http.StatusOK
	}
	e := &portableSession{ready: make(chan struct{}), identity: cl.identity, key: cl.key, expiry: cl.expiry,
		adopted: cl.origin != p.codec.origin, digest: idDigest(id)}
	p.sessions[id] = e
	p.mu.Unlock()
	// A session with an owner (forward.go), adopted: the owner is gone
	// (or restarted without its state), or, adopted by the owner itself,
	// its copy closed (idled out), with its isolated upstream sessions.
	e.ownerGone.Store(cl.owner() != "")
	state, ups, err := cl.restore()
	e.ups = ups
	if err == nil && state.LogLevel == "" {
		state.LogLevel = p.storedLevel(e.digest) // loglevel.go
	}
	if err == nil {
		err = p.connect(id, e, &mcp.ServerSessionOptions{State: state})
	}
	if err != nil {
		p.fail(id, e, err)
		return nil, http.StatusNotFound
	}
	if e.adopted {
		p.g.log.Debug("session adopted from its id", "created", time.Unix(cl.created, 0))
	}
	return e, http.StatusOK
}

// connect connects e's server session, registers it and starts its idle
// timer; it closes e.ready.
func (p *portable) connect(id string, e *portableSession, opts *mcp.ServerSessionOptions) error {
	t := &mcp.StreamableServerTransport{SessionID: id}
	ss, err := p.g.mcp.Connect(p.g.ctx, t, opts)
	if err != nil {
		return err
	}
	e.ss, e.t = ss, t
	p.mu.Lock()
	p.bySS[ss] = e
	p.mu.Unlock()
	if idle := p.g.opts.SessionIdleTimeout; idle > 0 {
		e.timer = time.AfterFunc(idle, func() { _ = ss.Close() })
	}
	close(e.ready)
	go func() {
		_ = ss.Wait()
		e.mu.Lock()
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		e.mu.Unlock()
		p.mu.Lock()
		if p.sessions[id] == e {
			delete(p.sessions, id)
		}
		delete(p.bySS, ss)
		p.mu.Unlock()
	}()
	return nil
}

func (p *portable) fail(id string, e *portableSession, err error) {
	e.err = err
	close(e.ready)
	p.mu.Lock()
	if p.sessions[id] == e {
		delete(p.sessions, id)
	}
	p.mu.Unlock()
}

// create starts a new session for an initialize request: its id is sealed
// from the initialize parameters, before the session answers them.
func (p *portable) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "failed to read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var msg struct {
		Method string                `json:"method"`
		Params *mcp.InitializeParams `json:"params"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Method != "initialize" || msg.Params == nil {
		http.Error(w, "Bad Request: a request without Mcp-Session-Id must be initialize (with params)", http.StatusBadRequest)
		return
	}
	version := msg.Params.ProtocolVersion
	if !slices.Contains(mcp.SupportedProtocolVersions(), version) || version >= "2026-07-28" {
		version = "2025-11-25" // what the SDK's initialize negotiates
	}
	// The session's isolated upstream sessions travel in its id (resume.go).
	ups, taken := p.g.takeUpstreams(r.Context(), version, msg.Params.Capabilities)
	// Its other isolated upstream sessions are made here: other replicas
	// forward its requests to this one (forward.go).
	id, err := p.codec.seal(sessionOwner(r), &portableState{Version: version, Caps: msg.Params.Capabilities, Info: msg.Params.ClientInfo, Up: ups,
		OwnerURL: p.g.ownerURL(ups)})
	if err != nil {
		p.g.dropTaken(taken)
		http.Error(w, "failed to make a session id", http.StatusInternalServerError)
		return
	}
	cl, err := p.codec.open(id)
	if err != nil {
		p.g.dropTaken(taken)
		http.Error(w, "failed to make a session id", http.StatusInternalServerError)
		return
	}
	e := &portableSession{ready: make(chan struct{}), identity: cl.identity, key: cl.key, expiry: cl.expiry, digest: idDigest(id), ups: ups}
	p.mu.Lock()
	p.sessions[id] = e
	p.mu.Unlock()
	if err := p.connect(id, e, nil); err != nil {
		p.g.dropTaken(taken)
		p.fail(id, e, err)
		http.Error(w, "failed connection", http.StatusInternalServerError)
		return
	}
	p.g.adoptTaken(e.ss, taken)
	defer func() {
		if e.ss.InitializeParams() == nil {
			p.g.endUpstreams(e.ss, ups) // initialize failed: never handed out
			_ = e.ss.Close()
		}
	}()
	e.hold()
	defer e.release(p.g.opts.SessionIdleTimeout)
	e.t.ServeHTTP(w, r)
}

// serveGET serves the session's standalone stream until the client leaves,
// the session ends or a drain stops it; a drain's stop ends the stream with
// an SSE retry field so that the client reconnects, to another replica.
func (p *portable) serveGET(w http.ResponseWriter, r *http.Request, e *portableSession) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s := &getStream{cancel: cancel}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "gateway is shutting down: reconnect to another gateway", http.StatusServiceUnavailable)
		return
	}
	p.streams[s] = struct{}{}
	p.mu.Unlock()
	e.hold()
	defer e.release(p.g.opts.SessionIdleTimeout)
	// Streams are not replayed (a reconnection may land on any replica):
	// a Last-Event-ID, which the SDK would refuse without an event store,
	// is dropped, and the stream starts afresh.
	r = r.WithContext(ctx)
	r.Header.Del("Last-Event-ID")
	e.t.ServeHTTP(&primedWriter{ResponseWriter: w, id: p.primeID.Add(1)}, r)
	p.mu.Lock()
	delete(p.streams, s)
	stopped := s.stopped
	p.mu.Unlock()
	if stopped && r.Context().Err() == nil {
		_, _ = fmt.Fprintf(w, "event: close\nretry: %d\ndata: \n\n", streamRetry.Milliseconds())
		_ = http.NewResponseController(w).Flush()
	}
}

// primedWriter opens a GET stream with a priming event (an SSE event with
// an id and no data, SEP-1699) after the SDK's first write. Clients count
// reconnections without progress, which an id that changes is: with it, a
// session outlives any number of replicas draining or dying under its
// stream (the go-sdk client gives up after five reconnections without
// progress otherwise).
type primedWriter struct {
	http.ResponseWriter
	id     int64
	status int
	primed bool
}

// WriteHeader implements http.ResponseWriter.
func (w *primedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *primedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	if err == nil && !w.primed && w.status == http.StatusOK {
		w.primed = true
		_, err = fmt.Fprintf(w.ResponseWriter, "id: mcpool-%d-%d\ndata: \n\n", time.Now().UnixNano(), w.id)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (w *primedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hold pauses the idle timer while a request or stream is open.
func (e *portableSession) hold() {
	e.mu.Lock()
	if e.timer != nil && e.refs == 0 {
		e.timer.Stop()
	}
	e.refs++
	e.mu.Unlock()
}

// release restarts the idle timer when the last request or stream ends.
func (e *portableSession) release(idle time.Duration) {
	e.mu.Lock()
	e.refs--
	if e.timer != nil && e.refs == 0 {
		e.timer.Reset(idle)
	}
	e.mu.Unlock()
}

// sessionOwner is what a session is bound to: the subject of a verified
// token when an auth middleware set one, else the request's Authorization
// credential, else nothing (a gateway without auth).
func sessionOwner(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil && ti.UserID != "" {
		return "sub:" + ti.UserID
	}
	if a := strings.TrimSpace(r.Header.Get("Authorization")); a != "" {
		return "cred:" + a
	}
	return ""
}

func acceptsStream(r *http.Request) bool { return accepts(r, "text/event-stream") }
func acceptsJSON(r *http.Request) bool   { return accepts(r, "application/json") }

func accepts(r *http.Request, want string) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
			if mt == want || mt == "*/*" || mt == strings.Split(want, "/")[0]+"/*" {
				return true
			}
		}
	}
	return false
}
