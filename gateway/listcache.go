package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// The list cache: the SDK's own answers to stateless discovery requests,
// replayed.
//
// A client that opens a session for every call (many agents do) sends, per
// call, server/discover and tools/list before its tools/call, each a
// 2026-07-28 request that the go-sdk serves with a whole server session of
// its own (about half the gateway's CPU for such a client). Their answers
// depend only on the request (its params, _meta included, and its headers,
// credentials included) and on the gateway's catalog, which changes rarely.
// So the gateway keeps the SDK's answer to each distinct request and serves
// it again, under the new request's id, until the catalog changes:
// Gateway.notifyChanged (every list change, Reload, a change relayed from
// another replica) and a server's completions capability changing
// (completion.go) end every kept answer.
//
// Only what the answer cannot depend on otherwise is kept: server/discover,
// tools/list, prompts/list and resources/list (resources/templates/list is
// read from the upstreams on each request), 2026-07-28 requests answered as
// one application/json result, while no server is in ModePassthrough (whose
// lists are read with each caller's credentials). A request is keyed by its
// method, its params as sent, the validated token's information (identity
// and scopes, as the auth middleware found them for this request) and the
// headers the SDK or the gateway's policy read (Authorization, Host,
// Origin, Accept, Content-Type, the Mcp-*, Sec-Fetch-* and Mcpool-*
// headers), so that no caller is served another's answer or one the SDK
// would have refused; headers a proxy adds per request (X-Request-Id, trace
// context) do not split the key. A request the cache is not sure of goes to
// the SDK.

// listCacheBytes bounds the answers kept, in bytes (results, headers and
// entryOverhead each); past it, entries picked at random make room.
const listCacheBytes = 4 << 20

// entryOverhead is what an entry costs beside its result and headers: its
// key, the map's slot and the structs.
const entryOverhead = 256

// cacheableMethods are the methods whose answers the cache keeps.
var cacheableMethods = map[string]bool{
	"server/discover": true,
	"tools/list":      true,
	"prompts/list":    true,
	"resources/list":  true,
}

// keyHeaders are the headers, by canonical name, that the SDK's handler or
// the gateway reads for these methods; keyHeaderPrefixes the families.
var (
	keyHeaders        = map[string]bool{"Authorization": true, "Accept": true, "Content-Type": true, "Origin": true, "Last-Event-Id": true}
	keyHeaderPrefixes = []string{"Mcp-", "Sec-Fetch-", "Mcpool-"}
)

// keyHeader reports whether the header name is part of the cache key.
func keyHeader(name string) bool {
	if keyHeaders[name] {
		return true
	}
	for _, p := range keyHeaderPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// answerHeaders are the SDK's answer headers kept with an answer; the rest
// (Date, Content-Length) are the new answer's own.
var answerHeaders = []string{"Content-Type", "Cache-Control"}

type listCache struct {
	gen  atomic.Uint64 // advanced when the catalog changes
	hits atomic.Uint64 // answers served from the cache, for tests

	mu      sync.Mutex
	entries map[[32]byte]*listAnswer // guarded by mu
	size    int                      // bytes of the entries' results; guarded by mu
}

// listAnswer is a kept answer: its result and the headers the SDK sent.
type listAnswer struct {
	gen    uint64
	header http.Header
	result json.RawMessage
}

// invalidate ends every answer kept.
func (c *listCache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	c.entries, c.size = nil, 0
	c.mu.Unlock()
}

func (c *listCache) get(key [32]byte, gen uint64) *listAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.entries[key]; a != nil && a.gen == gen {
		return a
	}
	return nil
}

// size is what a costs against listCacheBytes.
func (a *listAnswer) size() int {
	n := entryOverhead + len(a.result)
	for k, vs := range a.header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n
}

// put keeps a, read under generation a.gen, unless the catalog has changed
// since.
func (c *listCache) put(key [32]byte, a *listAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := a.size()
	if a.gen != c.gen.Load() || n > listCacheBytes {
		return
	}
	if c.entries == nil {
		c.entries = map[[32]byte]*listAnswer{}
	}
	if old := c.entries[key]; old != nil {
		c.size -= old.size()
		delete(c.entries, key)
	}
	for k, old := range c.entries { // map order: entries picked at random
		if c.size+n <= listCacheBytes {
			break
		}
		c.size -= old.size()
		delete(c.entries, k)
	}
	c.entries[key] = a
	c.size += n
}

// listWire is a request the cache may answer: exactly these members.
type listWire struct {
	JSONRPC string
	ID      json.RawMessage
	Method  string
	Params  json.RawMessage
}

// decodeListRequest reads body as one JSON-RPC request with no members but
// jsonrpc, id, method and params, each once, as the SDK reads them.
func decodeListRequest(body []byte, m *listWire) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok || seen[key] {
			return false
		}
		seen[key] = true
		switch key {
		case "jsonrpc":
			err = dec.Decode(&m.JSONRPC)
		case "id":
			err = dec.Decode(&m.ID)
		case "method":
			err = dec.Decode(&m.Method)
		case "params":
			err = dec.Decode(&m.Params)
		default:
			return false
		}
		if err != nil {
			return false
		}
	}
	if _, err := dec.Token(); err != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF && m.JSONRPC == "2.0"
}

// listKey is the cache key of a request: its method, params, validated
// token and the headers that matter (keyHeader).
func listKey(r *http.Request, m *listWire) [32]byte {
	h := sha256.New()
	h.Write([]byte(m.Method))
	h.Write([]byte{0})
	h.Write(m.Params)
	h.Write([]byte{0})
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		b, _ := json.Marshal(ti) // scopes and identity as validated now
		h.Write(b)
	}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		if keyHeader(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			h.Write([]byte{0})
			h.Write([]byte(name))
			h.Write([]byte{':'})
			h.Write([]byte(v))
		}
	}
	h.Write([]byte{0})
	h.Write([]byte(r.Host))
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// cachedList answers r (whose body is body) from the list cache, or through
// next while keeping next's answer, and reports whether it did either; false
// leaves r to the caller.
func (g *Gateway) cachedList(w http.ResponseWriter, r *http.Request, body []byte, next http.Handler) bool {
	if !bytes.Contains(body, []byte(`/list"`)) && !bytes.Contains(body, []byte(`"server/discover"`)) {
		return false
	}
	if !g.stateless(r) || r.Header.Get("Mcp-Protocol-Version") < "2026-07-28" ||
		!hostAllowed(r) || !mediaOK(r) || len(r.Header.Values("Last-Event-ID")) > 0 {
		return false
	}
	var m listWire
	if !decodeListRequest(body, &m) || !cacheableMethods[m.Method] || !plainID(m.ID) {
		return false
	}
	if streamNeeded(body) {
		return false
	}
	for _, srv := range g.set.Load().servers {
		if srv.Mode == ModePassthrough {
			return false
		}
	}
	key := listKey(r, &m)
	gen := g.lists.gen.Load()
	if a := g.lists.get(key, gen); a != nil {
		g.lists.hits.Add(1)
		writeListAnswer(w, a, m.ID)
		return true
	}
	rec := &answerRecorder{header: http.Header{}, status: http.StatusOK}
	next.ServeHTTP(rec, r)
	rec.copyTo(w)
	if a := rec.answer(m.ID); a != nil {
		a.gen = gen
		g.lists.put(key, a)
	}
	return true
}

// writeListAnswer writes a kept answer under the request's id.
func writeListAnswer(w http.ResponseWriter, a *listAnswer, id json.RawMessage) {
	b := make([]byte, 0, len(a.result)+len(id)+40)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, a.result...)
	b = append(b, '}')
	h := w.Header()
	for k, v := range a.header {
		h[k] = slices.Clone(v)
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// answerRecorder holds the SDK's answer to a request the cache may keep, to
// be copied to the client once complete (a single application/json answer:
// nothing is streamed).
type answerRecorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

// Header implements http.ResponseWriter.
func (a *answerRecorder) Header() http.Header { return a.header }

// WriteHeader implements http.ResponseWriter: the first status holds.
func (a *answerRecorder) WriteHeader(status int) {
	if !a.wrote {
		a.status, a.wrote = status, true
	}
}

// Write implements http.ResponseWriter, holding b.
func (a *answerRecorder) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

// Flush implements http.Flusher: the answer is written whole at the end.
func (a *answerRecorder) Flush() {}

// copyTo writes the answer held to w.
func (a *answerRecorder) copyTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body.Bytes())
}

// answer returns the answer held as one to keep, or nil: a 200
// application/json JSON-RPC result to the request of id.
func (a *answerRecorder) answer(id json.RawMessage) *listAnswer {
	ct, _, _ := strings.Cut(a.header.Get("Content-Type"), ";")
	if a.status != http.StatusOK || strings.TrimSpace(ct) != "application/json" {
		return nil
	}
	var resp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(a.body.Bytes(), &resp) != nil || resp.JSONRPC != "2.0" || !bytes.Equal(resp.ID, id) ||
		len(resp.Result) == 0 || resp.Result[0] != '{' || resp.Error != nil {
		return nil
	}
	header := http.Header{}
	for _, k := range answerHeaders {
		if v := a.header.Values(k); len(v) > 0 {
			header[k] = slices.Clone(v)
		}
	}
	return &listAnswer{header: header, result: resp.Result}
}
