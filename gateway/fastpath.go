package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/loopback"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The relay: a fast path for tools/call over HTTP.
//
// The go-sdk's streamable server decodes each POST several times (the
// message, its method, its _meta, its params, the Mcp-Name check), each
// decode with a fresh 32 KiB buffer, and builds a whole server session for
// every 2026-07-28 request. For the one request that dominates a gateway's
// traffic, a plain tools/call, the relay reads the body once, checks what
// the SDK would check, routes the call through Gateway.callTool (admission,
// modes, timeouts, figures: the same path the SDK path takes) and writes the
// JSON-RPC response itself, as one application/json answer.
//
// Anything the relay is not sure of goes to the SDK unchanged: calls that
// carry a progress token (their notifications need the SDK's streams),
// batches, unknown fields, other methods, sessions it has not seen
// initialized, malformed or unusual messages, a Host the SDK would refuse.
// The SDK then answers exactly as before, errors included: the fast path is
// only ever a shortcut to the answer the SDK would give.
//
// Cancellation: a 2026-07-28 request is cancelled when its HTTP request
// ends; a 2025-11-25 session's call by notifications/cancelled (the relay
// answers those for its own calls), by the end of its HTTP request, or by
// the end of its session.

// relayBodyLimit bounds the request bodies the relay reads; a larger one
// goes to the SDK.
const relayBodyLimit = 64 << 10

type fastPath struct {
	sessions sync.Map // Mcp-Session-Id -> *relaySession (initialized 2025-11-25 sessions)
	calls    sync.Map // session ID + "\x00" + request ID -> context.CancelFunc
	bufs     sync.Pool
	handled  atomic.Int64 // calls served by the fast path (tests, figures)
}

type relaySession struct {
	// cred is a digest of the credential that initialized the session: a
	// request with another is left to the SDK (and the portable-session
	// layer), which refuse it, since a session id never stands in for
	// authentication.
	cred    [32]byte
	ss      *mcp.ServerSession
	ctx     context.Context // ends with the session
	lastSDK atomic.Int64    // unix ns of the last request let through to the SDK
}

func (rl *fastPath) getBuf() *bytes.Buffer {
	if b, ok := rl.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (rl *fastPath) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		rl.bufs.Put(b)
	}
}

// relayWire is a JSON-RPC request as the relay reads it.
type relayWire struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// relayParams are tools/call params (and notifications/cancelled's
// requestId).
type relayParams struct {
	Name      string                     `json:"name"`
	Arguments json.RawMessage            `json:"arguments"`
	Meta      map[string]json.RawMessage `json:"_meta"`
	RequestID json.RawMessage            `json:"requestId"`
	Reason    string                     `json:"reason"`
}

// relayHandler serves the tools/call fast path in front of next (the SDK's
// handlers), and lets every other request through to next with its body
// intact.
func (g *Gateway) relayHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		buf := g.fast.getBuf()
		defer g.fast.putBuf(buf)
		_, err := buf.ReadFrom(io.LimitReader(r.Body, relayBodyLimit+1))
		body := buf.Bytes()
		if err != nil || len(body) > relayBodyLimit {
			r2 := r.Clone(r.Context())
			r2.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			next.ServeHTTP(w, r2)
			return
		}
		if g.relayServe(w, r, body) {
			return
		}
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		if g.cachedList(w, r2, body, next) { // listcache.go
			return
		}
		next.ServeHTTP(w, r2)
		g.relayLearn(r, body)
	})
}

// stateless reports whether the gateway serves r without a session (as in
// Handler).
func (g *Gateway) stateless(r *http.Request) bool {
	v := r.Header.Get("Mcp-Protocol-Version")
	return g.opts.Stateless || v >= "2026-07-28" && !g.opts.SessionsOnly
}

// relayLearn notes a 2025-11-25 session once the SDK has handled its
// notifications/initialized: from then on its plain calls may take the
// fast path.
func (g *Gateway) relayLearn(r *http.Request, body []byte) {
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" || g.stateless(r) || !bytes.Contains(body, []byte("notifications/initialized")) {
		return
	}
	if _, ok := g.fast.sessions.Load(sid); ok {
		return
	}
	var m relayWire
	if json.Unmarshal(body, &m) != nil || m.Method != "notifications/initialized" {
		return
	}
	for ss := range g.mcp.Sessions() {
		if ss.ID() != sid || ss.InitializeParams() == nil {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := &relaySession{ss: ss, ctx: ctx, cred: credDigest(r)}
		s.lastSDK.Store(time.Now().UnixNano())
		if _, loaded := g.fast.sessions.LoadOrStore(sid, s); loaded {
			cancel()
			return
		}
		// Not g.bg: Close waits for g.bg before it closes the sessions
		// opened meanwhile; this goroutine ends when its session does.
		go func() {
			_ = ss.Wait()
			cancel()
			g.fast.sessions.Delete(sid)
		}()
		return
	}
}

// relayServe answers r if it is a tools/call the fast path can take (or a
// notifications/cancelled for one of its calls), and reports whether it did.
func (g *Gateway) relayServe(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if !bytes.Contains(body, []byte(`"tools/call"`)) && !bytes.Contains(body, []byte(`"notifications/cancelled"`)) {
		return false
	}
	if !hostAllowed(r) || !mediaOK(r) || len(r.Header.Values("Last-Event-ID")) > 0 {
		return false
	}
	var m relayWire
	var p relayParams
	if !decodeRequest(body, &m, &p) || m.JSONRPC != "2.0" {
		return false
	}
	stateless := g.stateless(r)
	version := r.Header.Get("Mcp-Protocol-Version")
	var rs *relaySession
	sid := ""
	if stateless {
		if version < "2026-07-28" {
			return false // a 2025 client of a Stateless gateway: the SDK synthesizes its session
		}
	} else {
		if version != "2025-11-25" && version != "2025-06-18" {
			return false
		}
		sid = r.Header.Get("Mcp-Session-Id")
		v, ok := g.fast.sessions.Load(sid)
		if sid == "" || !ok {
			return false
		}
		rs = v.(*relaySession)
		if rs.cred != credDigest(r) {
			return false
		}
	}
	if m.Method == "notifications/cancelled" {
		if stateless || m.ID != nil || p.RequestID == nil {
			return false
		}
		v, ok := g.fast.calls.LoadAndDelete(sid + "\x00" + string(p.RequestID))
		if !ok {
			return false
		}
		v.(context.CancelFunc)()
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	if m.Method != "tools/call" || !plainID(m.ID) || p.Name == "" || p.RequestID != nil {
		return false
	}
	if len(p.Arguments) > 0 && p.Arguments[0] != '{' && string(p.Arguments) != "null" {
		return false
	}
	if _, ok := p.Meta["progressToken"]; ok {
		return false // progress travels on the SDK's streams
	}
	if stateless {
		var pv string
		if json.Unmarshal(p.Meta[mcp.MetaKeyProtocolVersion], &pv) != nil || pv != version ||
			!isObject(p.Meta[mcp.MetaKeyClientCapabilities]) ||
			r.Header.Get("Mcp-Method") != "tools/call" || r.Header.Get("Mcp-Name") != p.Name {
			return false
		}
		if ci, ok := p.Meta[mcp.MetaKeyClientInfo]; ok && !isObject(ci) {
			return false
		}
	} else if _, ok := p.Meta[mcp.MetaKeyProtocolVersion]; ok {
		return false // the SDK refuses the new protocol on sessions
	}
	set := g.set.Load()
	sname, _, ok := set.naming.Route(p.Name)
	if ok && set.byName[sname] != nil && set.byName[sname].Mode == ModeIsolated && rs == nil {
		return false // isolated needs the downstream session
	}
	if rs != nil && time.Since(time.Unix(0, rs.lastSDK.Load())) > g.opts.SessionIdleTimeout/4 {
		// Let the SDK see the session now and then, so that its idle
		// timer knows the session is in use.
		rs.lastSDK.Store(time.Now().UnixNano())
		return false
	}

	ctx := r.Context()
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: p.Name, Arguments: p.Arguments}, Extra: &mcp.RequestExtra{Header: r.Header, TokenInfo: auth.TokenInfoFromContext(r.Context())}}
	if rs != nil {
		req.Session = rs.ss
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		stop := context.AfterFunc(rs.ctx, cancel)
		key := sid + "\x00" + string(m.ID)
		g.fast.calls.Store(key, cancel)
		defer func() { stop(); cancel(); g.fast.calls.Delete(key) }()
	}
	for _, k := range []string{"traceparent", "tracestate"} {
		var v any
		if raw, ok := p.Meta[k]; ok && json.Unmarshal(raw, &v) == nil {
			if req.Params.Meta == nil {
				req.Params.Meta = mcp.Meta{}
			}
			req.Params.Meta[k] = v
		}
	}
	g.fast.handled.Add(1)
	// The result passes through undecoded where the upstream session
	// allows it (mcpool.WithRawResult).
	var raw mcpool.RawResult
	res, err := g.callTool(withRawResult(ctx, &raw), req)
	if err != nil && refusedDraining(err) {
		// The drain began after the guard let the request in: refused as
		// the guard refuses, so that a load balancer retries it elsewhere
		// (the call was not started).
		refuseDraining(w) // http.go
		return true
	}
	if err == nil && raw.JSON != nil {
		g.writeRaw(w, m.ID, raw.JSON, stateless)
		return true
	}
	g.writeRelayed(w, m.ID, res, err, stateless)
	return true
}

type rawResultKey struct{}

// withRawResult asks the pool for the result undecoded
// (mcpool.WithRawResult), and keeps raw where the audit finds its size.
func withRawResult(ctx context.Context, raw *mcpool.RawResult) context.Context {
	return context.WithValue(mcpool.WithRawResult(ctx, raw), rawResultKey{}, raw)
}

// rawResultSize is the size of the undecoded result of ctx's call, or -1.
func rawResultSize(ctx context.Context) int64 {
	if raw, _ := ctx.Value(rawResultKey{}).(*mcpool.RawResult); raw != nil && raw.JSON != nil {
		return int64(len(raw.JSON))
	}
	return -1
}

// writeRaw writes the JSON-RPC response for a relayed call whose result
// came undecoded: as the server sent it, and for 2026-07-28 with
// resultType and the gateway's serverInfo in _meta as writeRelayed adds
// them.
func (g *Gateway) writeRaw(w http.ResponseWriter, id, result json.RawMessage, newProtocol bool) {
	buf := g.fast.getBuf()
	defer g.fast.putBuf(buf)
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	buf.WriteString(`,"result":`)
	if !newProtocol {
		buf.Write(result)
	} else if err := g.completeResult(buf, result); err != nil {
		buf.Reset()
		buf.WriteString(`{"jsonrpc":"2.0","id":`)
		buf.Write(id)
		buf.WriteString(`,"error":`)
		e, _ := json.Marshal(&jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "encoding the result: " + err.Error()})
		buf.Write(e)
	}
	buf.WriteByte('}')
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// completeResult writes result to buf with the 2026-07-28 fields the
// gateway's own answers carry: resultType "complete" (a 2025-11-25
// upstream sends none) and the gateway's serverInfo in _meta unless the
// result names one.
func (g *Gateway) completeResult(buf *bytes.Buffer, result json.RawMessage) error {
	result = bytes.TrimSpace(result)
	if len(result) > 1 && result[0] == '{' && !bytes.Contains(result, []byte(`"_meta"`)) && !bytes.Contains(result, []byte(`"resultType"`)) {
		// Neither key is there (most results): the two are written
		// first and the rest copied, not decoded.
		buf.WriteString(`{"resultType":"complete","_meta":{"` + mcp.MetaKeyServerInfo + `":`)
		info, _ := json.Marshal(g.impl())
		buf.Write(info)
		buf.WriteByte('}')
		if rest := bytes.TrimSpace(result[1:]); len(rest) > 0 && rest[0] != '}' {
			buf.WriteByte(',')
		}
		buf.Write(result[1:])
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(result, &top); err != nil {
		return err
	}
	var meta map[string]json.RawMessage
	if raw, ok := top["_meta"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return err
		}
	}
	if _, ok := meta[mcp.MetaKeyServerInfo]; !ok {
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		meta[mcp.MetaKeyServerInfo], _ = json.Marshal(g.impl())
		top["_meta"], _ = json.Marshal(meta)
	}
	if _, ok := top["resultType"]; !ok {
		top["resultType"] = json.RawMessage(`"complete"`)
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(top); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// writeRelayed writes the JSON-RPC response for a relayed call as the SDK
// would: the result (for 2026-07-28 with resultType and the gateway's
// serverInfo in _meta), or the error as the SDK maps errors to the wire.
func (g *Gateway) writeRelayed(w http.ResponseWriter, id json.RawMessage, res *mcp.CallToolResult, err error, newProtocol bool) {
	buf := g.fast.getBuf()
	defer g.fast.putBuf(buf)
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	status := http.StatusOK
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err == nil && res == nil {
		err = errors.New("no result")
	}
	if err != nil {
		we := wireError(err)
		if newProtocol {
			switch we.Code {
			case jsonrpc.CodeMethodNotFound:
				status = http.StatusNotFound
			case jsonrpc.CodeInvalidParams, mcp.CodeUnsupportedProtocolVersion, mcp.CodeMissingRequiredClientCapabilities:
				status = http.StatusBadRequest
			}
		}
		buf.WriteString(`,"error":`)
		_ = enc.Encode(we)
	} else {
		out := relayResult{Meta: res.Meta, Content: res.Content, StructuredContent: res.StructuredContent, IsError: res.IsError,
			InputRequests: res.InputRequests, RequestState: res.RequestState}
		if res.NeedsInput() {
			out.ResultType = "input_required"
		} else if newProtocol {
			out.ResultType = "complete"
		}
		if newProtocol {
			if _, ok := out.Meta[mcp.MetaKeyServerInfo]; !ok {
				m := make(mcp.Meta, len(out.Meta)+1)
				for k, v := range out.Meta {
					m[k] = v
				}
				m[mcp.MetaKeyServerInfo] = g.impl()
				out.Meta = m
			}
		}
		buf.WriteString(`,"result":`)
		if e := enc.Encode(out); e != nil {
			buf.Reset()
			buf.WriteString(`{"jsonrpc":"2.0","id":`)
			buf.Write(id)
			buf.WriteString(`,"error":`)
			_ = enc.Encode(&jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "encoding the result: " + e.Error()})
		}
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	b = append(b, '}')
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// relayResult is mcp.CallToolResult's wire form (its MarshalJSON), with the
// result type settable.
type relayResult struct {
	Meta              mcp.Meta            `json:"_meta,omitempty"`
	Content           []mcp.Content       `json:"content"`
	StructuredContent any                 `json:"structuredContent,omitempty"`
	IsError           bool                `json:"isError,omitempty"`
	InputRequests     mcp.InputRequestMap `json:"inputRequests,omitempty"`
	RequestState      string              `json:"requestState,omitempty"`
	ResultType        string              `json:"resultType,omitempty"`
}

var (
	implOnce sync.Once
	implVal  *mcp.Implementation
)

// impl is the gateway's Implementation, as newMCPServer gives it.
func (g *Gateway) impl() *mcp.Implementation {
	implOnce.Do(func() { implVal = &mcp.Implementation{Name: "mcpool-gateway", Version: mcpool.Version} })
	return implVal
}

// wireError maps err to a JSON-RPC error as the go-sdk does: a
// *jsonrpc.Error as it is; an error wrapping one keeps its code with the
// outer message; any other error has code 0 and its message.
func wireError(err error) *jsonrpc.Error {
	if we, ok := err.(*jsonrpc.Error); ok {
		return we
	}
	out := &jsonrpc.Error{Message: err.Error()}
	var wrapped *jsonrpc.Error
	if errors.As(err, &wrapped) {
		out.Code = wrapped.Code
	}
	return out
}

// decodeRequest reads body as one JSON-RPC request object and its params
// object in one pass (jsontext, reading from body without copying: m's and
// p's raw values alias body), refusing unknown keys (and keys that differ
// from known ones only in case or by escapes, which encoding/json would
// match but the SDK does not), duplicate keys and invalid UTF-8: a request
// refused here is served by the SDK's handler, which decides.
func decodeRequest(body []byte, m *relayWire, p *relayParams) bool {
	dec := requestDecoders.Get().(*jsontext.Decoder)
	defer requestDecoders.Put(dec)
	dec.Reset(bytes.NewBuffer(body))
	defer dec.Reset(eofReader{})
	ok := readObject(dec, func(name jsontext.Value) bool {
		switch string(name) {
		case `"jsonrpc"`:
			return readString(dec, &m.JSONRPC)
		case `"id"`:
			return readRaw(dec, &m.ID)
		case `"method"`:
			return readString(dec, &m.Method)
		case `"params"`:
			if m.Params != nil || dec.PeekKind() != '{' {
				return false
			}
			from := dec.InputOffset() // before the colon
			ok := readObject(dec, func(name jsontext.Value) bool {
				return readParam(dec, name, p)
			})
			m.Params = bytes.TrimLeft(body[from:dec.InputOffset()], " \t\r\n:")
			return ok
		}
		return false
	})
	if !ok || m.Params == nil {
		return false
	}
	if _, err := dec.ReadToken(); err != io.EOF { // one value, then the end
		return false
	}
	return true
}

// readParam reads the value of a params key into p.
func readParam(dec *jsontext.Decoder, name jsontext.Value, p *relayParams) bool {
	switch string(name) {
	case `"name"`:
		return readString(dec, &p.Name)
	case `"arguments"`:
		return readRaw(dec, &p.Arguments)
	case `"_meta"`:
		if dec.PeekKind() != '{' {
			return false
		}
		var raw json.RawMessage
		return readRaw(dec, &raw) && json.Unmarshal(raw, &p.Meta) == nil
	case `"requestId"`:
		return readRaw(dec, &p.RequestID)
	case `"reason"`:
		return readString(dec, &p.Reason)
	}
	return false
}

var requestDecoders = sync.Pool{New: func() any { return jsontext.NewDecoder(eofReader{}) }}

// eofReader is an empty input: a pooled decoder is reset onto it so that
// it holds no request body.
type eofReader struct{}

// Read implements io.Reader: always io.EOF.
func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// readObject reads an object from dec, calling member for each name with
// dec at the name's value; member reads the value and reports whether it
// was one the caller knows.
func readObject(dec *jsontext.Decoder, member func(name jsontext.Value) bool) bool {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil || !member(name) {
			return false
		}
	}
	_, err := dec.ReadToken()
	return err == nil
}

// readString reads a string into s as encoding/json would (null leaves s
// as it is).
func readString(dec *jsontext.Decoder, s *string) bool {
	v, err := dec.ReadValue()
	if err != nil {
		return false
	}
	switch v.Kind() {
	case 'n':
		return true
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			*s = string(v[1 : len(v)-1])
			return true
		}
		u, err := jsontext.AppendUnquote(nil, v)
		*s = string(u)
		return err == nil
	}
	return false
}

// readRaw reads any value into raw, as encoding/json's RawMessage does
// (null included).
func readRaw(dec *jsontext.Decoder, raw *json.RawMessage) bool {
	v, err := dec.ReadValue()
	*raw = json.RawMessage(v)
	return err == nil
}

// plainID reports whether id is a JSON-RPC id the relay echoes as is: an
// integer or a string without escapes, in valid UTF-8 (the SDK would
// answer another with U+FFFD in its place).
func plainID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	if id[0] == '"' {
		return len(id) >= 2 && id[len(id)-1] == '"' && !bytes.ContainsAny(id[1:len(id)-1], "\\\"") && utf8.Valid(id)
	}
	for i, c := range id {
		if (c < '0' || c > '9') && !(i == 0 && c == '-' && len(id) > 1) {
			return false
		}
	}
	return len(id) <= 18
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) >= 2 && raw[0] == '{' && raw[len(raw)-1] == '}'
}

// mediaOK mirrors the SDK's Content-Type and Accept checks for POSTs.
func mediaOK(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		return false
	}
	var jsonOK, streamOK bool
	for _, v := range r.Header.Values("Accept") {
		for _, tok := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(tok, ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK && streamOK
}

// hostAllowed mirrors the SDK's DNS rebinding protection: a request that
// reached a loopback address must name a loopback host.
func hostAllowed(r *http.Request) bool {
	if r.Host == "" {
		// HTTP/1.0 without Host: a load balancer's health check (HAProxy's
		// "option httpchk"), never a browser, which always names the host.
		return true
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || la == nil || !loopback.Addr(la.String()) {
		return true
	}
	return loopback.Addr(r.Host)
}

// credDigest is a digest of r's credential: its Authorization header and
// the identity an authenticating middleware put in its context.
func credDigest(r *http.Request) [32]byte {
	h := sha256.New()
	h.Write([]byte(r.Header.Get("Authorization")))
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		h.Write([]byte{0})
		h.Write([]byte(ti.UserID))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}
