package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Server→client traffic (MCP spec 2025-11-25: "Sampling", "Elicitation",
// "Logging", and a resource's notifications/resources/updated) goes back to
// the downstream client whose call caused it, never to another client
// (URL elicitations' completions: elicitation_complete.go; updates:
// subscriptions.go).
//
// Every routed call registers a caller (the downstream session and the
// downstream request's context, deadline included) under a token that
// travels in the upstream call's context. What the upstream sends while
// serving the call is matched to the caller by, in order:
//
//   - over HTTP: the stream it came on. The streamable HTTP transport sends
//     a server's requests and notifications about a call on that call's
//     POST response; the gateway's HTTP client marks each such message with
//     the caller's token (in params._meta, removed before it goes on);
//   - the context the SDK hands the handler, when it is the call's (the
//     2026-07-28 client answering an input_required result);
//   - the calls in flight on the server: in ModeIsolated those of the
//     upstream session's own downstream session; otherwise, if all belong
//     to one downstream session, that one. Over stdio a shared upstream
//     session that carries several clients' calls at once cannot tell
//     whose a request is: it is refused (a JSON-RPC error upstream), never
//     guessed.
//
// A request with no caller, or for a capability the caller's client did
// not declare, is answered with a JSON-RPC error at once. A relayed request
// ends with the call: its deadline is the call's.

// callerMetaKey marks an upstream message with its caller's token.
const callerMetaKey = "io.mcpool/caller"

type callerKey struct{}

// caller is one routed call in flight.
type caller struct {
	token string
	ctx   context.Context // the downstream request's, with the call's deadline
	ss    *mcp.ServerSession
	srv   *server
	// seen counts the messages marked with the call on its response
	// stream; handled those relayed. The call's result waits for the
	// relay of what came before it (the SDK hands a response to the call
	// at once and notifications to their handler in another goroutine).
	seen, handled atomic.Int64
	wake          chan struct{}
}

// callers are the calls in flight of every gateway of the process, by
// token, for the HTTP client that marks their messages.
var (
	callers   sync.Map // token -> *caller
	callerSeq atomic.Uint64
)

// relayed counts one message of c as relayed.
func (c *caller) relayed() {
	c.handled.Add(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drain waits (briefly) until every message marked with c is relayed.
func (c *caller) drain() {
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for c.handled.Load() < c.seen.Load() {
		select {
		case <-c.wake:
		case <-timeout.C:
			return
		}
	}
}

type relayHub struct {
	seq     atomic.Uint64
	mu      sync.Mutex
	byToken map[string]*caller
	bySrv   map[*server]map[*caller]struct{}
	owners  sync.Map        // *mcpool.Pool (ModeIsolated) -> *isoOwner
	urls    urlElicitations // elicitation_complete.go
}

// enter registers the call req to srv; the returned context carries its
// token upstream. leave must be called when the call ends.
func (g *Gateway) enterCall(ctx context.Context, srv *server, req mcp.Request) (context.Context, func()) {
	// A call without a session still gets a token: what the upstream
	// marks with it must not be taken for another caller's.
	ss, _ := req.GetSession().(*mcp.ServerSession)
	h := &g.relay
	c := &caller{token: fmt.Sprintf("c%d", callerSeq.Add(1)), ctx: ctx, ss: ss, srv: srv, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.byToken == nil {
		h.byToken = map[string]*caller{}
		h.bySrv = map[*server]map[*caller]struct{}{}
	}
	h.byToken[c.token] = c
	if h.bySrv[srv] == nil {
		h.bySrv[srv] = map[*caller]struct{}{}
	}
	h.bySrv[srv][c] = struct{}{}
	h.mu.Unlock()
	callers.Store(c.token, c)
	return context.WithValue(ctx, callerKey{}, c.token), func() {
		c.drain()
		callers.Delete(c.token)
		h.mu.Lock()
		delete(h.byToken, c.token)
		delete(h.bySrv[srv], c)
		h.mu.Unlock()
	}
}

// errNoCaller is the error upstream for a request the gateway cannot route.
var errNoCaller = errors.New("mcpool gateway: no downstream call to relay this request to")

// callerFor finds the caller of a message from srv (see the comment at the
// top of this file). owner, if set, is the downstream session whose
// isolated upstream session sent it. meta's token is removed.
func (g *Gateway) callerFor(ctx context.Context, meta mcp.Meta, srv *server, owner *mcp.ServerSession) (*caller, error) {
	h := &g.relay
	tok, _ := meta[callerMetaKey].(string)
	delete(meta, callerMetaKey)
	if tok == "" {
		tok, _ = ctx.Value(callerKey{}).(string)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.byToken[tok]; c != nil && c.srv == srv && c.ss != nil && (owner == nil || c.ss == owner) {
		return c, nil
	}
	if tok != "" {
		// Marked with a call that has ended (or is another server's):
		// never guess another.
		return nil, fmt.Errorf("%w: the call it belongs to has ended", errNoCaller)
	}
	var found *caller
	for c := range h.bySrv[srv] {
		if c.ss == nil || owner != nil && c.ss != owner {
			continue
		}
		if found != nil && found.ss != c.ss {
			return nil, fmt.Errorf("%w: several clients' calls are in flight on server %s and the transport does not say whose this is (serve the server in isolated mode, or over HTTP)", errNoCaller, srv.name)
		}
		found = c
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no call to server %s is in flight", errNoCaller, srv.name)
	}
	return found, nil
}

// relayCtx is the context of a relayed request: the caller's (its deadline,
// and its place in the downstream transport), ended also when the upstream
// gives up on the request.
func relayCtx(upstream context.Context, c *caller) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(upstream, cancel)
	return ctx, func() { stop(); cancel() }
}

// isoOwner is the downstream session an isolated pool serves; nil while
// the pool is a spare.
type isoOwner struct {
	ss   atomic.Pointer[mcp.ServerSession]
	asks asks // the capabilities the pool declared
}

// spareAsks returns what the isolated pool p declared.
func (h *relayHub) spareAsks(p *mcpool.Pool) asks {
	if v, ok := h.owners.Load(p); ok {
		return v.(*isoOwner).asks
	}
	return asks{}
}

// upstreamHandlers are the handlers of srv's pools for what the upstream
// sends the client. owner is set for ModeIsolated pools.
func (g *Gateway) upstreamHandlers(srv *server, owner *isoOwner) *mcpool.ClientHandlers {
	own := func() *mcp.ServerSession {
		if owner == nil {
			return nil
		}
		return owner.ss.Load()
	}
	find := func(ctx context.Context, meta mcp.Meta) (*caller, error) {
		if owner != nil && own() == nil {
			return nil, fmt.Errorf("%w: the upstream session serves no client yet", errNoCaller)
		}
		return g.callerFor(ctx, meta, srv, own())
	}
	return &mcpool.ClientHandlers{
		Relay:            true,
		NoMultiRoundTrip: true, // input_required results pass through (mrtr.go)
		Elicitation: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			p := *req.Params
			p.Meta = copyMeta(p.Meta)
			c, err := find(ctx, p.Meta)
			if err != nil {
				return nil, err
			}
			if caps := clientCaps(c.ss); caps == nil || caps.Elicitation == nil {
				return nil, undeclared("elicitation")
			}
			if len(p.Meta) == 0 {
				p.Meta = nil
			}
			url := p.Mode == "url" && p.ElicitationID != ""
			if url {
				g.relay.noteURLElicitation(srv, p.ElicitationID, c.ss)
			}
			rctx, cancel := relayCtx(ctx, c)
			defer cancel()
			res, err := c.ss.Elicit(rctx, &p)
			if url && (err != nil || res.Action != "accept") {
				g.relay.forgetURLElicitation(srv, p.ElicitationID)
			}
			return res, err
		},
		CreateMessage: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			p := *req.Params
			p.Meta = copyMeta(p.Meta)
			c, err := find(ctx, p.Meta)
			if err != nil {
				return nil, err
			}
			if caps := clientCaps(c.ss); caps == nil || caps.Sampling == nil {
				return nil, undeclared("sampling")
			}
			if len(p.Meta) == 0 {
				p.Meta = nil
			}
			rctx, cancel := relayCtx(ctx, c)
			defer cancel()
			return c.ss.CreateMessage(rctx, &p)
		},
		ListRoots: func(ctx context.Context, req *mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
			var p mcp.ListRootsParams
			if req.Params != nil {
				p = *req.Params
			}
			p.Meta = copyMeta(p.Meta)
			c, err := find(ctx, p.Meta)
			if err != nil && own() != nil {
				// Asked outside a call (at initialize, say): the isolated
				// upstream session's own client answers.
				c, err = &caller{ctx: g.ctx, ss: own()}, nil
			}
			if err != nil {
				return nil, err
			}
			if caps := clientCaps(c.ss); caps == nil || caps.RootsV2 == nil {
				return nil, undeclared("roots")
			}
			if len(p.Meta) == 0 {
				p.Meta = nil
			}
			rctx, cancel := relayCtx(ctx, c)
			defer cancel()
			if c.ctx == g.ctx {
				var cancelT context.CancelFunc
				rctx, cancelT = context.WithTimeout(rctx, 30*time.Second)
				defer cancelT()
			}
			return c.ss.ListRoots(rctx, &p)
		},
		Log: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			g.relayLog(ctx, srv, own(), req)
		},
		ResourceUpdated: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			g.relayUpdated(srv, own(), req) // subscriptions.go
		},
		ElicitationComplete: func(ctx context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
			g.relayElicitationComplete(ctx, srv, own(), req) // elicitation_complete.go
		},
		// An isolated upstream session is its client's alone: the client's
		// notifications/roots/list_changed is forwarded to it
		// (forwardRootsChanged).
		RootsListChanged: owner != nil,
	}
}

// UpstreamHandlers returns the handlers to install as
// mcpool.Config.ClientHandlers of the pools of the named server that are
// made before the gateway (a Group's, for ModeShared): they relay the
// server's sampling, elicitation (and URL elicitations' completions), log
// messages and resource updates to the downstream client of the call (see
// the package documentation). They declare roots without listChanged: a
// client's notifications/roots/list_changed is not forwarded to a shared
// upstream session, which serves many clients. get
// returns the gateway, or nil until it is made (requests then get a
// JSON-RPC error; notifications are dropped).
func UpstreamHandlers(server string, get func() *Gateway) *mcpool.ClientHandlers {
	pick := func() *mcpool.ClientHandlers {
		g := get()
		if g == nil {
			return nil
		}
		srv := g.set.Load().byName[server]
		if srv == nil || srv.handlers == nil {
			return nil
		}
		return srv.handlers
	}
	return &mcpool.ClientHandlers{
		Relay:            true,
		NoMultiRoundTrip: true,
		Elicitation: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if h := pick(); h != nil {
				return h.Elicitation(ctx, req)
			}
			return nil, errNoCaller
		},
		CreateMessage: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			if h := pick(); h != nil {
				return h.CreateMessage(ctx, req)
			}
			return nil, errNoCaller
		},
		ListRoots: func(ctx context.Context, req *mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
			if h := pick(); h != nil {
				return h.ListRoots(ctx, req)
			}
			return nil, errNoCaller
		},
		Log: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			if h := pick(); h != nil {
				h.Log(ctx, req)
			}
		},
		ResourceUpdated: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			if h := pick(); h != nil {
				h.ResourceUpdated(ctx, req)
			}
		},
		ElicitationComplete: func(ctx context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
			if h := pick(); h != nil {
				h.ElicitationComplete(ctx, req)
			}
		},
	}
}

func clientCaps(ss *mcp.ServerSession) *mcp.ClientCapabilities {
	if ip := ss.InitializeParams(); ip != nil {
		return ip.Capabilities
	}
	return nil
}

func copyMeta(m mcp.Meta) mcp.Meta {
	out := mcp.Meta{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// RelayHTTPClient returns an HTTP client for an upstream server's pools
// that marks the server's requests and notifications on a call's response
// stream with the call (see the package documentation), so that the
// gateway routes them to the call's client. base nil means a client with
// idle connections for maxIdle calls.
func RelayHTTPClient(base *http.Client, maxIdle int) *http.Client {
	var out http.Client
	if base != nil {
		out = *base
	}
	rt := out.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = max(maxIdle, 2)
		t.MaxIdleConns = max(t.MaxIdleConns, maxIdle)
		rt = t
	}
	out.Transport = relayTransport{rt}
	return &out
}

type relayTransport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t relayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _ := req.Context().Value(callerKey{}).(string)
	resp, err := t.base.RoundTrip(req)
	if err != nil || tok == "" || req.Method != http.MethodPost {
		return resp, err
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	br := markerReaders.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	resp.Body = &sseMarker{rc: resp.Body, br: br, token: tok}
	return resp, nil
}

// markerReaders are the sseMarkers' buffers, one per stream being read.
var markerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// sseMarker passes an SSE stream through, adding the caller's token to
// the params._meta of each request and notification in it.
type sseMarker struct {
	rc      io.ReadCloser
	br      *bufio.Reader
	token   string
	pending []byte
	err     error
}

// Read implements io.Reader.
func (m *sseMarker) Read(p []byte) (int, error) {
	for len(m.pending) == 0 {
		if m.err != nil {
			if m.br != nil {
				// Read is the buffer's only user (Close, which may run
				// beside it, does not touch it): it goes back once read out.
				m.br.Reset(nil)
				markerReaders.Put(m.br)
				m.br = nil
			}
			return 0, m.err
		}
		// The line is in the buffer until the next read, and pending is
		// read out before it.
		line, err := m.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			head := append([]byte(nil), line...) // before the buffer is read again
			var rest []byte
			rest, err = m.br.ReadBytes('\n')
			line = append(head, rest...)
		}
		m.err = err
		m.pending = m.mark(line)
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

// Close implements io.Closer.
func (m *sseMarker) Close() error { return m.rc.Close() }

func (m *sseMarker) mark(line []byte) []byte {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok || !bytes.Contains(data, []byte(`"method"`)) {
		// Not a request or notification (a response is most lines): not
		// decoded.
		return line
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(data), &msg) != nil {
		return line
	}
	var method string
	if json.Unmarshal(msg["method"], &method) != nil || !markedMethods[method] {
		return line
	}
	var params map[string]json.RawMessage
	if raw := msg["params"]; raw != nil && json.Unmarshal(raw, &params) != nil {
		return line
	}
	if params == nil {
		params = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	if raw := params["_meta"]; raw != nil && json.Unmarshal(raw, &meta) != nil {
		return line
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[callerMetaKey], _ = json.Marshal(m.token)
	if c, ok := callers.Load(m.token); ok && method == "notifications/message" && c.(*caller).ss != nil {
		// Counted only for a call with a downstream session: relayLog
		// relays (and counts) nothing else, and drain would wait for it.
		c.(*caller).seen.Add(1)
	}
	var err error
	if params["_meta"], err = json.Marshal(meta); err != nil {
		return line
	}
	if msg["params"], err = json.Marshal(params); err != nil {
		return line
	}
	out, err := json.Marshal(msg)
	if err != nil {
		return line
	}
	return append(append([]byte("data: "), out...), '\n')
}

// markedMethods are the upstream messages routed to a call's client.
var markedMethods = map[string]bool{
	"elicitation/create":     true,
	"sampling/createMessage": true,
	"roots/list":             true,
	"notifications/message":  true,
	// elicitation_complete.go
	"notifications/elicitation/complete": true,
}

// relayConfig installs the relay's handlers in cfg, a pool config of srv
// (owner set for ModeIsolated pools), and, for an HTTP server, the client
// that marks messages with their call.
func (g *Gateway) relayConfig(srv *server, cfg *mcpool.Config, owner *isoOwner) {
	h := g.upstreamHandlers(srv, owner)
	if owner == nil {
		srv.handlers = h
	}
	cfg.ClientHandlers = h
	if cfg.URL != "" {
		if cfg.HTTPClient == nil {
			cfg.HTTPClient = RelayHTTPClient(nil, cfg.IdleConns())
		} else if _, ok := cfg.HTTPClient.Transport.(relayTransport); !ok {
			cfg.HTTPClient = RelayHTTPClient(cfg.HTTPClient, cfg.IdleConns())
		}
	}
}

// ownPool records that the isolated pool p serves ss.
func (g *Gateway) ownPool(p *mcpool.Pool, ss *mcp.ServerSession) {
	if v, ok := g.relay.owners.Load(p); ok {
		v.(*isoOwner).ss.Store(ss)
	}
}

// legacyVersion is the protocol version an isolated upstream session for
// ss must speak: the client's own when it is of the 2025-11-25 era (or
// earlier), in which a server sends sampling, elicitation and roots
// requests while serving a call (a 2026-07-28 session returns them in the
// result instead, which a client of the earlier era cannot read); "" for
// any, or when srv's Config pins a version.
func legacyVersion(srv *server, ss *mcp.ServerSession) string {
	if srv.Config.ProtocolVersion != "" || ss == nil {
		return ""
	}
	ip := ss.InitializeParams()
	if ip == nil || ip.ProtocolVersion == "" || ip.ProtocolVersion >= "2026-07-28" {
		return ""
	}
	return ip.ProtocolVersion
}

// asks is what a downstream client answers: an isolated upstream session
// declares to its server only the capabilities its client declared.
// rootsChanged: the client declared roots.listChanged, so the upstream
// session declares it too and hears of its changes.
type asks struct{ elicitation, sampling, roots, rootsChanged bool }

var asksAll = asks{true, true, true, true}

func asksOf(ss *mcp.ServerSession) asks {
	caps := clientCaps(ss)
	if caps == nil {
		return asks{}
	}
	return asks{elicitation: caps.Elicitation != nil, sampling: caps.Sampling != nil, roots: caps.RootsV2 != nil,
		rootsChanged: caps.RootsV2 != nil && caps.RootsV2.ListChanged}
}

// restrict drops the handlers of what the client does not answer, and so
// their capabilities.
func (a asks) restrict(h *mcpool.ClientHandlers) *mcpool.ClientHandlers {
	if a == asksAll || h == nil {
		return h
	}
	cp := *h
	if !a.elicitation {
		cp.Elicitation = nil
	}
	if !a.sampling {
		cp.CreateMessage = nil
	}
	if !a.roots {
		cp.ListRoots = nil
	}
	cp.RootsListChanged = cp.RootsListChanged && a.rootsChanged
	return &cp
}

// forwardRootsChanged passes a downstream client's
// notifications/roots/list_changed ("Roots") to its own upstream sessions:
// those of its isolated servers (declared with roots.listChanged when the
// client declared it), whose servers then ask for the roots again and get
// the client's answer. Shared and passthrough upstream sessions are not
// told: they serve many clients, and answer roots/list with the roots of
// the client whose call asks, and refuse it outside a call, so they
// declare roots without listChanged.
func (g *Gateway) forwardRootsChanged(ctx context.Context, req *mcp.RootsListChangedRequest) {
	ss := req.Session
	g.iso.mu.Lock()
	is := g.iso.sessions[ss]
	g.iso.mu.Unlock()
	if is == nil {
		return
	}
	var pools []*mcpool.Pool
	is.mu.Lock()
	for _, e := range is.pools {
		select {
		case <-e.ready:
			if e.p != nil {
				pools = append(pools, e.p)
			}
		default: // connecting: its server lists the roots when it needs them
		}
	}
	is.mu.Unlock()
	for _, p := range pools {
		p.NotifyRootsListChanged()
	}
}

// undeclared is the answer to a server's request that the client of the
// call did not declare it can serve: JSON-RPC "method not found", as the
// client itself would answer, not an error without a code.
func undeclared(capability string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "mcpool gateway: the client of this call did not declare " + capability}
}
