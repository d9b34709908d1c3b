package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resumable isolated sessions. With portable session ids (SessionKeys), a
// 2025-11-25 downstream session gets, at initialize, its upstream session of
// every isolated HTTP server (a pre-warmed spare when one is ready), and its
// id carries each upstream session's Mcp-Session-Id and InitializeResult.
// Any replica then serves the session's calls on the same upstream session:
// its pool's HTTP client answers the SDK's initialize and initialized
// locally, with the sealed result and id, and sends everything else to the
// server under that id. The upstream session belongs to the downstream
// session, not to a replica's pool: a pool closing (its replica's copy idles
// out, is evicted or the replica drains) does not DELETE it; the downstream
// client's DELETE does, on the replica that takes it and holds the pool, and
// otherwise the server's own session timeout ends it.

// maxSealedResult bounds the InitializeResult an id carries (instructions
// dropped): a server answering with more is not resumable elsewhere.
const maxSealedResult = 2048

// upstreamRef is one isolated upstream session, as a session id carries it.
type upstreamRef struct {
	ID     string          `json:"s"` // the upstream's Mcp-Session-Id
	Result json.RawMessage `json:"r"` // its InitializeResult, without instructions

	lost atomic.Bool // the upstream answered 404 for it: its state is gone
}

// resumeTransport is the HTTP transport of an isolated pool when session
// ids are portable. With up set, the SDK's initialize and initialized are
// answered locally with up (a resumed upstream session); with keep set, the
// pool's DELETE is answered locally, unless the downstream session was
// deleted (terminate). A 404 for up's session marks it lost.
type resumeTransport struct {
	base   http.RoundTripper
	server string // the server's name, in errors

	mu        sync.Mutex
	up        *upstreamRef
	keep      bool
	terminate bool
	pending   int // initialize answered locally, initialized not yet
}

// bind makes t serve the upstream session ref from now on: later connects
// of the pool resume it, and its DELETE is kept for the downstream session.
func (t *resumeTransport) bind(ref *upstreamRef) {
	t.mu.Lock()
	t.up, t.keep = ref, true
	t.mu.Unlock()
}

// RoundTrip implements http.RoundTripper.
func (t *resumeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	up, keep, pending := t.up, t.keep && !t.terminate, t.pending
	t.mu.Unlock()
	switch {
	case req.Method == http.MethodDelete && keep:
		closeBody(req)
		return localResponse(req, http.StatusNoContent, "", nil), nil
	case up != nil && req.Method == http.MethodPost && (req.Header.Get("Mcp-Session-Id") == "" || pending > 0):
		body, sent, err := peekBody(req)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		req = sent
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		switch msg.Method {
		case "initialize":
			t.mu.Lock()
			t.pending++
			t.mu.Unlock()
			closeBody(req)
			out := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, up.Result)
			h := http.Header{"Content-Type": {"application/json"}, "Mcp-Session-Id": {up.ID}}
			return localResponse(req, http.StatusOK, string(out), h), nil
		case "notifications/initialized":
			t.mu.Lock()
			t.pending = max(0, t.pending-1)
			t.mu.Unlock()
			closeBody(req)
			return localResponse(req, http.StatusAccepted, "", nil), nil
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusNotFound && up != nil && req.Header.Get("Mcp-Session-Id") == up.ID {
		up.lost.Store(true)
		if lost := t.lostAnswer(req); lost != nil {
			_ = resp.Body.Close()
			return lost, nil
		}
	}
	return resp, err
}

// lostAnswer answers a request of the session the upstream ended with
// CodeSessionLost, so that the call's client reads why (the SDK would
// report a broken connection, and the pool retry it on a new connection
// to the same ended session); nil for a notification or response.
func (t *resumeTransport) lostAnswer(req *http.Request) *http.Response {
	if req.Method != http.MethodPost || req.GetBody == nil {
		return nil
	}
	rc, err := req.GetBody()
	if err != nil {
		return nil
	}
	defer rc.Close()
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.NewDecoder(rc).Decode(&msg) != nil || len(msg.ID) == 0 || msg.Method == "" {
		return nil
	}
	e := &jsonrpc.Error{Code: CodeSessionLost, Message: lostMessage(t.server, "the server ended this session's upstream session (404)")}
	e.Data, _ = json.Marshal(ErrorData{Server: t.server, Reason: "session_lost"})
	raw, err := json.Marshal(e)
	if err != nil {
		return nil
	}
	out := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":%s}`, msg.ID, raw)
	return localResponse(req, http.StatusOK, string(out), http.Header{"Content-Type": {"application/json"}})
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *resumeTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// peekBody returns req's body and the request to send on: req itself when
// its body can be read again (GetBody, as the SDK's requests have), else a
// clone with the body read.
func peekBody(req *http.Request) ([]byte, *http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, req, nil
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err == nil {
			defer rc.Close()
			body, err := io.ReadAll(rc)
			return body, req, err
		}
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, out, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func localResponse(req *http.Request, status int, body string, h http.Header) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// resumable reports whether srv's isolated upstream sessions can travel in
// portable session ids: streamable HTTP, with portable ids on.
func (g *Gateway) resumable(srv *server) bool {
	return g.port != nil && srv.Mode == ModeIsolated && srv.Config.URL != ""
}

// sealedPool is an upstream session taken for a downstream session at its
// initialize, before the downstream session exists.
type sealedPool struct {
	srv *server
	p   *mcpool.Pool
}

// takeUpstreams takes, for a downstream session being initialized with
// version and caps, an upstream session of every resumable isolated server,
// and returns their refs for its id. A server whose session cannot be
// taken now (overloaded, down) is left out: its first call connects as
// without portable ids, and is served by this replica only.
func (g *Gateway) takeUpstreams(ctx context.Context, version string, caps *mcp.ClientCapabilities) (map[string]*upstreamRef, []sealedPool) {
	var (
		refs  map[string]*upstreamRef
		taken []sealedPool
	)
	a := asks{}
	if caps != nil {
		a = asks{elicitation: caps.Elicitation != nil, sampling: caps.Sampling != nil, roots: caps.RootsV2 != nil}
	}
	type result struct {
		srv *server
		p   *mcpool.Pool
		ref *upstreamRef
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got []result
	)
	for _, srv := range g.set.Load().servers { // concurrently: connects add up otherwise
		if !g.resumable(srv) {
			continue
		}
		v := version
		if srv.Config.ProtocolVersion != "" || v >= "2026-07-28" {
			v = ""
		}
		wg.Go(func() {
			p, ref, err := g.takeUpstream(ctx, srv, v, a)
			if err != nil {
				g.log.Debug("isolated: no upstream session at initialize; the server's state stays on the replica that first calls it", "server", srv.name, "error", err)
				return
			}
			mu.Lock()
			got = append(got, result{srv, p, ref})
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, r := range got {
		if refs == nil {
			refs = map[string]*upstreamRef{}
		}
		refs[r.srv.name] = r.ref
		taken = append(taken, sealedPool{r.srv, r.p})
	}
	return refs, taken
}

// takeUpstream counts, takes (a spare, or a connect) and binds one
// upstream session of srv.
func (g *Gateway) takeUpstream(ctx context.Context, srv *server, version string, a asks) (*mcpool.Pool, *upstreamRef, error) {
	g.iso.mu.Lock()
	if g.iso.closed {
		g.iso.mu.Unlock()
		return nil, nil, mcpool.ErrPoolClosed
	}
	victim, err := g.reserveIsolated(srv)
	g.iso.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if victim != nil {
		go func() {
			defer g.iso.closing.Done()
			g.forgetPool(victim)
			_ = victim.Close(context.Background())
		}()
	}
	p, err := g.connectIsolated(ctx, srv, version, a)
	var ref *upstreamRef
	if err == nil {
		ref, err = g.bindUpstream(ctx, p)
		if err != nil {
			g.forgetPool(p)
			_ = p.Close(context.Background())
		}
	}
	if err != nil {
		g.iso.mu.Lock()
		g.iso.n--
		g.iso.mu.Unlock()
		return nil, nil, err
	}
	return p, ref, nil
}

// bindUpstream reads p's upstream session (its id and InitializeResult)
// and binds p's transport to it.
func (g *Gateway) bindUpstream(ctx context.Context, p *mcpool.Pool) (*upstreamRef, error) {
	v, ok := g.iso.transports.Load(p)
	if !ok {
		return nil, fmt.Errorf("gateway: isolated pool without a resumable transport")
	}
	var ref upstreamRef
	err := p.Do(ctx, func(_ context.Context, cs *mcp.ClientSession) error {
		ir := cs.InitializeResult()
		if cs.ID() == "" || ir == nil {
			return fmt.Errorf("gateway: the upstream keeps no session (no Mcp-Session-Id): nothing to resume")
		}
		cp := *ir
		cp.Instructions = ""
		res, err := json.Marshal(&cp)
		if err != nil {
			return err
		}
		if len(res) > maxSealedResult {
			return fmt.Errorf("gateway: the upstream's InitializeResult is %d bytes, more than a session id carries (%d)", len(res), maxSealedResult)
		}
		ref.ID, ref.Result = cs.ID(), res
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.(*resumeTransport).bind(&ref)
	return &ref, nil
}

// adoptTaken makes the upstream sessions taken at initialize ss's own.
func (g *Gateway) adoptTaken(ss *mcp.ServerSession, taken []sealedPool) {
	if len(taken) == 0 {
		return
	}
	g.iso.mu.Lock()
	is := g.iso.sessions[ss]
	if is == nil && !g.iso.closed {
		is = &isoSession{pools: map[*server]*isoPool{}}
		g.iso.sessions[ss] = is
		g.iso.closing.Add(1)
		go g.releaseWhenDone(ss, is)
	}
	if is != nil {
		is.mu.Lock()
		for _, t := range taken {
			e := &isoPool{ready: make(chan struct{}), p: t.p}
			close(e.ready)
			e.lastUsed.Store(g.port.codec.now().UnixNano())
			is.pools[t.srv] = e
		}
		is.mu.Unlock()
	}
	g.iso.mu.Unlock()
	for _, t := range taken {
		if is == nil { // closing
			g.iso.mu.Lock()
			g.iso.n--
			g.iso.mu.Unlock()
			g.forgetPool(t.p)
			_ = t.p.Close(context.Background())
			continue
		}
		g.ownPool(t.p, ss) // relay_requests.go
	}
}

// endUpstreams ends the upstream sessions ups of a downstream session its
// client deleted: ss's pools on this replica (ss may be nil: not held here)
// DELETE theirs when they close, with ss; the others are resumed for the
// purpose and closed at once, in the background.
func (g *Gateway) endUpstreams(ss *mcp.ServerSession, ups map[string]*upstreamRef) {
	if len(ups) == 0 {
		return
	}
	held := map[string]bool{}
	g.iso.mu.Lock()
	is := g.iso.sessions[ss]
	if ss == nil {
		is = nil
	}
	g.iso.mu.Unlock()
	if is != nil {
		is.mu.Lock()
		for srv, e := range is.pools {
			select {
			case <-e.ready:
			default:
				continue
			}
			if e.p == nil {
				continue
			}
			if v, ok := g.iso.transports.Load(e.p); ok {
				v.(*resumeTransport).end()
				held[srv.name] = true
			}
		}
		is.mu.Unlock()
	}
	set := g.set.Load()
	for name, ref := range ups {
		srv := set.byName[name]
		if held[name] || srv == nil || !g.resumable(srv) || ref.lost.Load() {
			continue
		}
		g.iso.mu.Lock()
		if g.iso.closed {
			g.iso.mu.Unlock()
			return
		}
		g.iso.closing.Add(1)
		g.iso.mu.Unlock()
		go func() {
			defer g.iso.closing.Done()
			ctx, cancel := context.WithTimeout(g.ctx, orDur(srv.Config.ConnectTimeout, mcpool.DefaultConnectTimeout))
			defer cancel()
			p, err := g.warmPool(ctx, srv, "", asks{}, 0, ref, nil)
			if err != nil {
				g.log.Debug("isolated: ending a deleted session's upstream session failed; the server's session timeout ends it", "server", srv.name, "error", err)
				return
			}
			if v, ok := g.iso.transports.Load(p); ok {
				v.(*resumeTransport).end()
			}
			g.forgetPool(p)
			_ = p.Close(context.Background())
		}()
	}
}

// end lets the pool's DELETE through: the downstream session was deleted.
func (t *resumeTransport) end() {
	t.mu.Lock()
	t.terminate = true
	t.mu.Unlock()
}

// version is the protocol version of the upstream session.
func (r *upstreamRef) version() string {
	var ir struct {
		V string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(r.Result, &ir)
	return ir.V
}

// forgetPool drops what the gateway keeps about an isolated pool that is
// being closed.
func (g *Gateway) forgetPool(p *mcpool.Pool) {
	g.relay.owners.Delete(p)
	g.iso.transports.Delete(p)
}

// sessionLost is the error of a call to srv whose upstream session state
// is not here: reason says why.
func sessionLost(srv *server, reason string) error {
	raw, _ := json.Marshal(ErrorData{Server: srv.name, Reason: "session_lost"})
	return &jsonrpc.Error{Code: CodeSessionLost, Data: raw, Message: lostMessage(srv.name, reason)}
}

func lostMessage(server, reason string) string {
	return fmt.Sprintf("server %s keeps per-session state (isolated mode), and %s: the state is lost; start a new session (initialize again)", server, reason)
}

// dropTaken closes the upstream sessions taken for a downstream session
// whose initialize failed before it existed. Their upstream sessions were
// never handed out: they are deleted.
func (g *Gateway) dropTaken(taken []sealedPool) {
	for _, t := range taken {
		if v, ok := g.iso.transports.Load(t.p); ok {
			v.(*resumeTransport).end()
		}
		g.iso.mu.Lock()
		g.iso.n--
		g.iso.mu.Unlock()
		g.forgetPool(t.p)
		_ = t.p.Close(context.Background())
	}
}
