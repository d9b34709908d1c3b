package mcpool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// RawResult receives a tools/call result undecoded: see [WithRawResult].
type RawResult struct {
	// JSON is the result object exactly as the server sent it; nil when
	// the call took the SDK's path (or failed).
	JSON json.RawMessage
}

type rawKey struct{}

// WithRawResult returns a context under which [Pool.CallTool] (and so a
// Group's calls) sends tools/call itself, as one POST on the leased
// session, and stores the server's result object in r.JSON without
// decoding it; the returned *mcp.CallToolResult then carries only IsError.
// It is for a relay (a gateway) that passes results on unchanged: decoding
// a result into typed content only to encode it again is most of the CPU a
// relayed call costs.
//
// The pool takes this path only where it does all the SDK's client does for
// a call: the transport is streamable HTTP (Config.URL) without an
// OAuthHandler, the session's protocol is before 2026-07-28 (a session with
// Mcp-Session-Id), and elicitation/create is relayed as sent
// (ClientHandlers.Relay) or not taken. On it, what the server sends on the
// call's response stream goes where the SDK would send it: requests
// (sampling/createMessage, elicitation/create, roots/list, ping) to the
// ClientHandlers with the call's context, answered on the session;
// notifications (progress, log messages, resource updates, elicitation
// completions, list_changed) to their handlers, in order, before CallTool
// returns; an interrupted stream that carried event ids is resumed with
// Last-Event-ID (MCP spec 2025-11-25, "Resumability and Redelivery"); a
// caller that gives up sends notifications/cancelled. Errors have the
// SDK's shapes, so retries, health checks and observers see the same call;
// only the result they see (RequestEvent.Result, CallEvent.Result) carries
// IsError alone. A handler still answering when the call returns has its
// context ended; the call does not wait for it, the pool's Close does.
// Anywhere else the call takes the SDK's path and r.JSON stays nil.
//
// r must not be shared by concurrent calls.
func WithRawResult(ctx context.Context, r *RawResult) context.Context {
	return context.WithValue(ctx, rawKey{}, r)
}

func rawResultOf(ctx context.Context) *RawResult {
	r, _ := ctx.Value(rawKey{}).(*RawResult)
	return r
}

// rawCaller sends tools/call on a streamable HTTP session as the SDK's
// client would (mcp/streamable.go of go-sdk v1.8.0), for WithRawResult.
type rawCaller struct {
	url    string
	client *http.Client
	// opts are the handlers the SDK's client was given; relay is
	// ClientHandlers.Relay's elicitation, roots ClientHandlers.ListRoots
	// (clienthandlers.go installs both as middleware on the SDK's side).
	opts  *mcp.ClientOptions
	h     *ClientHandlers
	seq   atomic.Uint64
	ctx   context.Context // the pool's: cancellation notices end with it
	bufs  sync.Pool
	delay time.Duration // the first reconnect's delay (1 s, as the SDK)
	// handlers runs answers and cancellation notices; Close waits for it.
	handlers handlerGroup
}

// newRawCaller returns nil when the pool's calls cannot take the raw path.
func newRawCaller(s *settings, client *http.Client, opts *mcp.ClientOptions) *rawCaller {
	h := s.ClientHandlers
	if s.URL == "" || s.OAuthHandler != nil || client == nil || (h != nil && h.Elicitation != nil && !h.Relay) {
		return nil
	}
	return &rawCaller{url: s.URL, client: client, opts: opts, h: h, delay: time.Second}
}

// takes reports whether cs's calls can take the raw path.
func (rc *rawCaller) takes(cs *mcp.ClientSession) bool {
	ir := cs.InitializeResult()
	return rc != nil && ir != nil && ir.ProtocolVersion < "2026-07-28" && cs.ID() != ""
}

// rawMessage is any JSON-RPC message, decoded one level deep.
type rawMessage struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *jsonrpc.Error  `json:"error,omitempty"`
}

// errRejected is the SDK's jsonrpc2.ErrRejected: a request that failed in
// transit (errclass.go: isRejected).
var errRejected = &jsonrpc.Error{Code: codeRejected, Message: "rejected by transport"}

const rawSummary = `sending "tools/call"`

// call sends params as tools/call on cs and returns the result object.
func (rc *rawCaller) call(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) (json.RawMessage, error) {
	id := `"mcpool-` + strconv.FormatUint(rc.seq.Add(1), 10) + `"`
	ps, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("calling %q: marshaling call parameters: %w", "tools/call", err)
	}
	body := make([]byte, 0, len(ps)+64)
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = append(body, id...)
	body = append(body, `,"method":"tools/call","params":`...)
	body = append(append(body, ps...), '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rc.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sid := cs.ID()
	rc.sessionHeaders(req.Header, cs)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := rc.client.Do(req)
	if err != nil {
		return nil, rc.ended(ctx, cs, id, fmt.Errorf("%s: %w: %w", rawSummary, errRejected, err))
	}
	if err := checkRaw(resp, sid); err != nil {
		return nil, err
	}
	if got := resp.Header.Get("Mcp-Session-Id"); got != "" && got != sid {
		resp.Body.Close()
		return nil, fmt.Errorf("mismatching session IDs %q and %q", sid, got)
	}
	var res json.RawMessage
	switch ct := mediaType(resp.Header.Get("Content-Type")); ct {
	case "application/json":
		res, err = rc.readJSON(ctx, cs, resp, id)
	case "text/event-stream":
		res, err = rc.readStream(ctx, cs, resp, id)
	default:
		resp.Body.Close()
		return nil, &rawBroken{fmt.Errorf("%s: unsupported content type %q", rawSummary, ct)}
	}
	if err != nil {
		return nil, rc.ended(ctx, cs, id, err)
	}
	return res, nil
}

// sessionHeaders sets the headers of a request on cs's session.
func (rc *rawCaller) sessionHeaders(h http.Header, cs *mcp.ClientSession) {
	if ir := cs.InitializeResult(); ir != nil {
		h.Set("Mcp-Protocol-Version", ir.ProtocolVersion)
	}
	h.Set("Mcp-Session-Id", cs.ID())
}

// ended returns err, or ctx's error when the caller gave up: the server is
// then told with notifications/cancelled, off the caller's return path (as
// the SDK does, go-sdk #1150).
func (rc *rawCaller) ended(ctx context.Context, cs *mcp.ClientSession, id string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if tr := trackOf(ctx); tr == nil || !tr.tooLarge.Load() { // not the pool's own cancel (an answer too large)
		reason, _ := json.Marshal(ctx.Err().Error())
		msg := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + id + `,"reason":` + string(reason) + `}}`)
		rc.handlers.run(func() {
			nctx, cancel := context.WithTimeout(untracked(ctx), 5*time.Second)
			defer cancel()
			stop := context.AfterFunc(rc.poolCtx(), cancel)
			defer stop()
			rc.post(nctx, cs, msg)
		})
	}
	return ctx.Err()
}

// untracked is ctx without its end and without the call's tracker
// (calls.go): what the pool posts on the call's behalf (an answer, a
// cancellation) must not be taken for the call's own request.
func untracked(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), trackKey{}, (*callTrack)(nil))
}

func (rc *rawCaller) poolCtx() context.Context {
	if rc.ctx == nil {
		return context.Background()
	}
	return rc.ctx
}

// post sends a notification or a response on cs's session; its answer is
// not read (the server owes none but 202).
func (rc *rawCaller) post(ctx context.Context, cs *mcp.ClientSession, msg []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rc.url, bytes.NewReader(msg))
	if err != nil {
		return
	}
	rc.sessionHeaders(req.Header, cs)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := rc.client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// checkRaw turns a status other than 2xx into the SDK's error for it
// (checkResponse in mcp/streamable.go), closing the body.
func checkRaw(resp *http.Response, sid string) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	defer resp.Body.Close()
	text := http.StatusText(code)
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s: %v", errRejected, rawSummary, text)
	}
	// Decoded as the SDK decodes it: an error body without a valid id
	// (TypeScript servers answer an unknown session so) is not the
	// server answering the call.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if msg, err := jsonrpc.DecodeMessage(body); err == nil {
		if r, ok := msg.(*jsonrpc.Response); ok && r.Error != nil {
			return fmt.Errorf("%s: %w: %w: %v", rawSummary, r.Error, errRejected, text)
		}
	}
	if code == http.StatusNotFound && sid != "" {
		return fmt.Errorf("%s: failed to connect (session ID: %v): %w", rawSummary, sid, mcp.ErrSessionMissing)
	}
	// The SDK breaks the session after any other status.
	return &rawBroken{fmt.Errorf("%s: %v", rawSummary, text)}
}

// rawBroken is an error after which the SDK would use the session no more
// (it fails the connection): the pool replaces the session (errclass.go).
type rawBroken struct{ err error }

// Error returns the SDK-shaped message.
func (e *rawBroken) Error() string { return e.err.Error() }

// Unwrap returns the error it marks.
func (e *rawBroken) Unwrap() error { return e.err }

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// readJSON reads a single-message answer.
func (rc *rawCaller) readJSON(ctx context.Context, cs *mcp.ClientSession, resp *http.Response, id string) (json.RawMessage, error) {
	defer resp.Body.Close()
	buf := rc.buf()
	defer rc.putBuf(buf)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &rawBroken{fmt.Errorf("%s: failed to read body: %v", rawSummary, err)}
	}
	var m rawMessage
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		return nil, &rawBroken{fmt.Errorf("%s: failed to decode response: %v", rawSummary, err)}
	}
	asks := serverAsks{group: &rc.handlers}
	hctx, cancel := context.WithCancel(ctx)
	res, done, err := rc.handle(hctx, cs, &m, id, &asks)
	cancel()
	if !done && err == nil {
		err = fmt.Errorf("calling %q: request terminated without response", "tools/call")
	}
	return res, err
}

// putBuf keeps b for another call unless it grew past 1 MiB (a large
// answer should not pin its memory).
func (rc *rawCaller) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		rc.bufs.Put(b)
	}
}

func (rc *rawCaller) buf() *bytes.Buffer {
	if b, ok := rc.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// rawMaxRetries is how many reconnects without progress a stream gets, as
// the SDK's StreamableClientTransport.MaxRetries default.
const rawMaxRetries = 5

// readStream reads the call's event stream until its response, resuming it
// with Last-Event-ID when the server cut it after sending event ids (as the
// SDK's handleSSE). Server requests are answered while it reads; they end
// with the call.
func (rc *rawCaller) readStream(ctx context.Context, cs *mcp.ClientSession, resp *http.Response, id string) (json.RawMessage, error) {
	// The server's requests are answered in the background; their
	// handlers' context ends with the call, which does not wait for them
	// (as the SDK's does not): Close does.
	asks := serverAsks{group: &rc.handlers}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var prevLast string
	retries := 0
	for {
		res, done, last, delay, err := rc.readEvents(hctx, cs, resp, id, &asks)
		if done || err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if last == "" {
			return nil, fmt.Errorf("calling %q: request terminated without response", "tools/call")
		}
		if last != prevLast {
			prevLast, retries = last, 0
		} else if retries++; retries > rawMaxRetries {
			return nil, &rawBroken{fmt.Errorf("%s: exceeded %d retries without progress (session ID: %v)", rawSummary, rawMaxRetries, cs.ID())}
		}
		if resp, err = rc.reconnect(ctx, cs, last, delay); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &rawBroken{fmt.Errorf("%s: failed to reconnect (session ID: %v): %v", rawSummary, cs.ID(), err)}
		}
		if err := checkRaw(resp, cs.ID()); err != nil {
			var rb *rawBroken
			if !errors.As(err, &rb) && !errors.Is(err, mcp.ErrSessionMissing) {
				err = &rawBroken{err} // the SDK fails the connection on any of them here
			}
			return nil, err
		}
	}
}

// streamReaders are readEvents' buffers.
var streamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readEvents reads one response body of the call's stream, parsing events
// as the SDK's scanner does (mcp/event.go): fields trimmed, comments
// skipped, a line without a colon malformed, the last event dispatched at
// EOF even without its blank line; an event's id counts once it is
// dispatched.
func (rc *rawCaller) readEvents(ctx context.Context, cs *mcp.ClientSession, resp *http.Response, id string, asks *serverAsks) (res json.RawMessage, done bool, last string, delay time.Duration, err error) {
	defer func() {
		if done {
			// Lets the connection be reused: the server ends the stream
			// after the response. One that keeps it open is cut, not
			// waited for.
			t := time.AfterFunc(100*time.Millisecond, func() { resp.Body.Close() })
			_, _ = io.Copy(io.Discard, resp.Body)
			t.Stop()
		}
		resp.Body.Close()
	}()
	br := streamReaders.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() { br.Reset(nil); streamReaders.Put(br) }()
	data := rc.buf()
	defer rc.putBuf(data)
	var ev struct {
		name, id string
		data     bool // a data field was seen
		any      bool // any field was seen
	}
	dispatch := func() (json.RawMessage, bool, error) {
		defer func() {
			data.Reset()
			ev.name, ev.id, ev.data, ev.any = "", "", false, false
		}()
		if !ev.any {
			return nil, false, nil
		}
		if ev.id != "" {
			last = ev.id
		}
		if !ev.data || data.Len() == 0 || (ev.name != "" && ev.name != "message") {
			return nil, false, nil // a priming event (an id only), or not a message
		}
		var m rawMessage
		if err := json.Unmarshal(data.Bytes(), &m); err != nil {
			return nil, false, &rawBroken{fmt.Errorf("%s: failed to decode event: %v", rawSummary, err)}
		}
		return rc.handle(ctx, cs, &m, id, asks)
	}
	for {
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			// A long line: gather the rest of it.
			long := append([]byte(nil), line...)
			for errors.Is(rerr, bufio.ErrBufferFull) {
				line, rerr = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			if ctx.Err() != nil {
				return nil, false, "", 0, ctx.Err()
			}
			return nil, false, last, delay, nil // the stream broke: as the server closing it
		}
		eof := rerr != nil
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if res, done, err = dispatch(); done || err != nil {
				return res, done, "", 0, err
			}
			if eof {
				return nil, false, last, delay, nil
			}
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			return nil, false, "", 0, &rawBroken{fmt.Errorf("%s: malformed event: malformed line in SSE stream: %q", rawSummary, line)}
		}
		value = bytes.TrimSpace(value)
		switch string(field) {
		case "data":
			if ev.data {
				data.WriteByte('\n')
			}
			data.Write(value)
			ev.data, ev.any = true, true
		case "event":
			ev.name, ev.any = string(value), true
		case "id":
			ev.id, ev.any = string(value), true
		case "retry":
			ev.any = true
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil {
				delay = time.Duration(n) * time.Millisecond
			}
		}
		if eof {
			if res, done, err = dispatch(); done || err != nil {
				return res, done, "", 0, err
			}
			return nil, false, last, delay, nil
		}
	}
}

// reconnect resumes the call's stream with a GET (connectSSE in the SDK).
func (rc *rawCaller) reconnect(ctx context.Context, cs *mcp.ClientSession, last string, delay time.Duration) (*http.Response, error) {
	var lastErr error
	for attempt := 1; attempt <= rawMaxRetries; attempt++ {
		d := delay
		if d <= 0 || attempt > 1 {
			d = rc.backoff(attempt)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.url, nil)
		if err != nil {
			return nil, err
		}
		rc.sessionHeaders(req.Header, cs)
		req.Header.Set("Last-Event-ID", last)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := rc.client.Do(req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("connection failed after %d attempts: %w", rawMaxRetries, lastErr)
}

// backoff is the SDK's reconnect delay: the first delay grown by 1.5 per
// attempt, capped at 30 s, plus full jitter.
func (rc *rawCaller) backoff(attempt int) time.Duration {
	d := time.Duration(float64(rc.delay) * math.Pow(1.5, float64(attempt-1)))
	d = min(d, 30*time.Second)
	return d + rand.N(d)
}

// serverAsks are the requests the server has sent during one call, being
// answered.
type serverAsks struct {
	group  *handlerGroup
	mu     sync.Mutex
	cancel map[string]context.CancelFunc // by the request's JSON id
}

// handlerGroup runs what the pool does in the background for raw calls
// (answers to the server's requests, cancellation notices), so that the
// pool's Close waits for them.
type handlerGroup struct {
	mu     sync.Mutex
	closed bool // guards wg against an Add after Wait began
	wg     sync.WaitGroup
}

// run runs f in the background, unless the pool is closing.
func (g *handlerGroup) run(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.wg.Go(f)
	}
}

// close waits for what runs, and refuses more.
func (g *handlerGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// start runs answer for the request with JSON id in the background, with
// a context that notifications/cancelled for that id ends.
func (a *serverAsks) start(ctx context.Context, id json.RawMessage, answer func(context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	key := string(id)
	a.mu.Lock()
	if a.cancel == nil {
		a.cancel = map[string]context.CancelFunc{}
	}
	a.cancel[key] = cancel
	a.mu.Unlock()
	a.group.run(func() {
		defer func() {
			a.mu.Lock()
			delete(a.cancel, key)
			a.mu.Unlock()
			cancel()
		}()
		answer(ctx)
	})
}

// cancelled ends the handler of the request the server cancelled.
func (a *serverAsks) cancelled(m *rawMessage) {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(m.Params, &p) != nil {
		return
	}
	a.mu.Lock()
	cancel := a.cancel[string(bytes.TrimSpace(p.RequestID))]
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// handle takes one message of the call's answer: its response ends the
// call; a server request is answered in the background (asks); a
// notification goes to its handler now, so that the call's result comes
// after what the server sent before it.
func (rc *rawCaller) handle(ctx context.Context, cs *mcp.ClientSession, m *rawMessage, id string, asks *serverAsks) (json.RawMessage, bool, error) {
	switch {
	case m.Method == "" && m.ID != nil:
		if !sameID(m.ID, id) {
			return nil, false, nil // not ours: the SDK drops it too
		}
		if m.Error != nil {
			return nil, true, fmt.Errorf("calling %q: %w", "tools/call", m.Error)
		}
		return resultObject(m.Result)
	case m.Method != "" && m.ID != nil:
		asks.start(ctx, bytes.TrimSpace(m.ID), func(ctx context.Context) { rc.answer(ctx, cs, m) })
	case m.Method == "notifications/cancelled":
		asks.cancelled(m)
	case m.Method != "":
		rc.notify(ctx, cs, m)
	}
	return nil, false, nil
}

// resultObject checks a response's result: an object, or null, which the
// SDK's decoding leaves as an empty result (and so does this: "{}").
func resultObject(res json.RawMessage) (json.RawMessage, bool, error) {
	res = bytes.TrimSpace(res)
	switch {
	case res == nil:
		return nil, true, fmt.Errorf("calling %q: response has neither result nor error", "tools/call")
	case string(res) == "null":
		return json.RawMessage(`{}`), true, nil
	case res[0] != '{':
		return nil, true, fmt.Errorf("calling %q: the result is not an object: %.40s", "tools/call", res)
	}
	return res, true, nil
}

// sameID reports whether the JSON id got is the string id sent.
func sameID(got json.RawMessage, sent string) bool {
	if string(got) == sent {
		return true
	}
	var a, b string
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(sent), &b) == nil && a == b
}

// notify passes a server notification to the handler the SDK would call.
func (rc *rawCaller) notify(ctx context.Context, cs *mcp.ClientSession, m *rawMessage) {
	o := rc.opts
	switch m.Method {
	case "notifications/progress":
		if p, ok := params[mcp.ProgressNotificationParams](m, o.ProgressNotificationHandler != nil); ok {
			o.ProgressNotificationHandler(ctx, &mcp.ProgressNotificationClientRequest{Session: cs, Params: p})
		}
	case "notifications/message":
		if p, ok := params[mcp.LoggingMessageParams](m, o.LoggingMessageHandler != nil); ok {
			o.LoggingMessageHandler(ctx, &mcp.LoggingMessageRequest{Session: cs, Params: p})
		}
	case "notifications/resources/updated":
		if p, ok := params[mcp.ResourceUpdatedNotificationParams](m, o.ResourceUpdatedHandler != nil); ok {
			o.ResourceUpdatedHandler(ctx, &mcp.ResourceUpdatedNotificationRequest{Session: cs, Params: p})
		}
	case "notifications/elicitation/complete":
		if p, ok := params[mcp.ElicitationCompleteParams](m, o.ElicitationCompleteHandler != nil); ok {
			o.ElicitationCompleteHandler(ctx, &mcp.ElicitationCompleteNotificationRequest{Session: cs, Params: p})
		}
	case "notifications/tools/list_changed":
		if p, ok := params[mcp.ToolListChangedParams](m, o.ToolListChangedHandler != nil); ok {
			o.ToolListChangedHandler(ctx, &mcp.ToolListChangedRequest{Session: cs, Params: p})
		}
	case "notifications/prompts/list_changed":
		if p, ok := params[mcp.PromptListChangedParams](m, o.PromptListChangedHandler != nil); ok {
			o.PromptListChangedHandler(ctx, &mcp.PromptListChangedRequest{Session: cs, Params: p})
		}
	case "notifications/resources/list_changed":
		if p, ok := params[mcp.ResourceListChangedParams](m, o.ResourceListChangedHandler != nil); ok {
			o.ResourceListChangedHandler(ctx, &mcp.ResourceListChangedRequest{Session: cs, Params: p})
		}
	}
}

// params decodes m's params as P when want; a message whose params do not
// decode is dropped, as the SDK drops it.
func params[P any](m *rawMessage, want bool) (*P, bool) {
	if !want {
		return nil, false
	}
	p := new(P)
	if len(m.Params) > 0 && string(m.Params) != "null" && json.Unmarshal(m.Params, p) != nil {
		return nil, false
	}
	return p, true
}

// answer runs a server request's handler and posts its answer.
func (rc *rawCaller) answer(ctx context.Context, cs *mcp.ClientSession, m *rawMessage) {
	res, err := rc.serve(ctx, cs, m)
	if ctx.Err() != nil {
		return // the call has ended: nobody waits for the answer
	}
	if v := reflect.ValueOf(res); err == nil && (res == nil || v.Kind() == reflect.Pointer && v.IsNil()) {
		// The SDK answers a handler's nil result with an internal error.
		err = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("the handler returned no result for %q", m.Method)}
	}
	var out []byte
	if err == nil {
		out, err = json.Marshal(res)
	}
	msg := append([]byte(`{"jsonrpc":"2.0","id":`), m.ID...)
	if err != nil {
		we, _ := json.Marshal(toWireError(err))
		msg = append(append(append(msg, `,"error":`...), we...), '}')
	} else {
		msg = append(append(append(msg, `,"result":`...), out...), '}')
	}
	// The answer is the server's due even if the call has just ended.
	pctx, cancel := context.WithTimeout(untracked(ctx), 10*time.Second)
	defer cancel()
	rc.post(pctx, cs, msg)
}

// serve calls the handler the SDK's client would call for m.
func (rc *rawCaller) serve(ctx context.Context, cs *mcp.ClientSession, m *rawMessage) (any, error) {
	o, h := rc.opts, rc.h
	bad := func(err error) error {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("handling '%s': %v", m.Method, err)}
	}
	switch m.Method {
	case "ping":
		return struct{}{}, nil
	case "sampling/createMessage":
		if o.CreateMessageHandler != nil {
			p := new(mcp.CreateMessageParams)
			if err := json.Unmarshal(m.Params, p); err != nil {
				return nil, bad(err)
			}
			return o.CreateMessageHandler(ctx, &mcp.CreateMessageRequest{Session: cs, Params: p})
		}
	case "elicitation/create":
		if h != nil && h.Relay && h.Elicitation != nil {
			p := new(mcp.ElicitParams)
			if err := json.Unmarshal(m.Params, p); err != nil {
				return nil, bad(err)
			}
			return h.Elicitation(ctx, &mcp.ElicitRequest{Session: cs, Params: p})
		}
	case "roots/list":
		if h != nil && h.ListRoots != nil {
			p := new(mcp.ListRootsParams)
			if len(m.Params) > 0 && string(m.Params) != "null" {
				if err := json.Unmarshal(m.Params, p); err != nil {
					return nil, bad(err)
				}
			}
			return h.ListRoots(ctx, &mcp.ListRootsRequest{Session: cs, Params: p})
		}
	}
	// As the SDK's connection answers a method it does not handle.
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("method not found: %q", m.Method)}
}

// toWireError is the SDK's mapping of a handler's error to the wire
// (internal/jsonrpc2/messages.go): a JSON-RPC error as it is, any other
// with its message and the code of a JSON-RPC error it wraps.
func toWireError(err error) *jsonrpc.Error {
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		if we == err {
			return we
		}
		return &jsonrpc.Error{Code: we.Code, Message: err.Error()}
	}
	return &jsonrpc.Error{Message: err.Error()}
}

// isErrorOf reads a result's isError without decoding the rest.
func isErrorOf(res json.RawMessage) bool {
	if !bytes.Contains(res, []byte(`"isError"`)) {
		return false
	}
	var v struct {
		IsError bool `json:"isError"`
	}
	return json.Unmarshal(res, &v) == nil && v.IsError
}

// callRaw calls the tool on cs through the raw path, observed as the SDK's
// calls are (observe.go).
func (p *Pool) callRaw(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) (*mcp.CallToolResult, json.RawMessage, error) {
	var out json.RawMessage
	req := &mcp.ClientRequest[*mcp.CallToolParams]{Session: cs, Params: params}
	res, err := p.observeRequest(ctx, "tools/call", req, func(ctx context.Context, _ string, _ mcp.Request) (mcp.Result, error) {
		var err error
		if out, err = p.dialer.raw.call(ctx, cs, params); err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{IsError: isErrorOf(out)}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return res.(*mcp.CallToolResult), out, nil
}
