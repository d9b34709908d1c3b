package mcpool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An answer over the 16 MB frame limit fails the call at once with an
// error matching ErrResponseTooLarge (a *SessionLostError), the session is
// replaced, the read-only call is retried once at most, and memory stays
// bounded: the pool reads no more than the limit of each answer.

const bigAnswer = 64 << 20

// bigFile writes n bytes of 'x' to a file and returns its path.
func bigFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := []byte(strings.Repeat("x", 1<<20))
	for i := 0; i < n; i += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// bigHTTP is a loopback MCP server written by hand, so that its 64 MB
// answer is streamed from a 1 MB buffer and the test's heap is the
// client's: it answers initialize, ping and tools/list, and every
// tools/call with 64 MB of text, as an event stream or as JSON. calls
// counts its calls; written records the most bytes of one answer the
// server got written before the client stopped reading.
func bigHTTP(t *testing.T, sse bool, calls, written *atomic.Int64) string {
	chunk := []byte(strings.Repeat("x", 1<<20))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		if req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var result string
		switch req.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"big","version":"1"}}`
		case "tools/list":
			result = `{"tools":[{"name":"big","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}]}`
		case "tools/call":
			calls.Add(1)
			head := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"`, req.ID)
			if sse {
				w.Header().Set("Content-Type", "text/event-stream")
				head = "event: message\ndata: " + head
			} else {
				w.Header().Set("Content-Type", "application/json")
			}
			if _, err := io.WriteString(w, head); err != nil {
				return
			}
			n := 0
			defer func() { storeMax(written, int64(n)) }()
			for ; n < bigAnswer; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return // the client stopped reading
				}
			}
			io.WriteString(w, "\"}]}}\n\n")
			return
		default:
			result = `{}`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// heapPeak samples HeapInuse until stop is closed and returns the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

func TestResponseTooLarge(t *testing.T) {
	var calls, written atomic.Int64
	cases := []struct {
		name string
		cfg  func(t *testing.T) mcpool.Config
	}{
		{"http/sse", func(t *testing.T) mcpool.Config { return mcpool.Config{URL: bigHTTP(t, true, &calls, &written)} }},
		{"http/json", func(t *testing.T) mcpool.Config { return mcpool.Config{URL: bigHTTP(t, false, &calls, &written)} }},
		{"stdio", func(t *testing.T) mcpool.Config {
			call := `echo x >> "$CALLS"; printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' "$id"; cat "$BIG"; printf '"}]}}\n'`
			return mcpool.Config{Command: shServer(shMCP, "BIG="+bigFile(t, bigAnswer), "CALL="+call,
				"CALLS="+filepath.Join(t.TempDir(), "calls"))}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
			written.Store(0)
			cfg := c.cfg(t)
			cfg.ProtocolVersion = "2025-11-25"
			cfg.Logger = quietLogger()
			cfg.HealthCheckInterval = -1
			p := newPool(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := p.ListTools(ctx); err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			stop := make(chan struct{})
			peak := heapPeak(stop)
			before := p.Stats()
			start := time.Now()
			_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "big"})
			took := time.Since(start)
			close(stop)
			peakHeap := <-peak
			after := p.Stats()
			if !errors.Is(err, mcpool.ErrResponseTooLarge) || !errors.Is(err, mcpool.ErrSessionLost) {
				t.Fatalf("CallTool after %v: %v; want ErrResponseTooLarge and ErrSessionLost", took, err)
			}
			var lost *mcpool.SessionLostError
			if !errors.As(err, &lost) || !lost.MayHaveRun {
				t.Fatalf("want a *SessionLostError that may have run: %v", err)
			}
			// The promise is that reading stops at the limit: over HTTP the
			// server never got the whole answer written (what it did write
			// is the 16 MB read and the sockets' buffers). The time it takes
			// is reading up to the limit, twice with the retry: under -race,
			// beside other work, the SDK's decoder makes that seconds, so
			// the time is held to its bound only without the race detector.
			if w := written.Load(); strings.HasPrefix(c.name, "http") && w >= bigAnswer {
				t.Errorf("the server wrote %d MB of one answer, all of it: the pool read past the limit", w>>20)
			}
			if within := time.Second; !raceDetector && took > within {
				t.Errorf("the call failed after %v, want < %v", took, within)
			}
			retries := after.Retries - before.Retries
			if retries > 1 {
				t.Errorf("%d retries, want at most 1 for an answer over the limit", retries)
			}
			if after.Deaths == before.Deaths {
				t.Errorf("the session was not replaced")
			}
			if !strings.Contains(err.Error(), "16 MB frame limit") || strings.Count(err.Error(), "mcpool:") != 1 {
				t.Errorf("message: %v", err)
			}
			grown := peakHeap - min(base, peakHeap)
			t.Logf("%s: failed in %v with %d retries; heap in use %d MB before, peak %d MB (+%d MB); the server wrote %d MB of one answer at most",
				c.name, took.Round(time.Millisecond), retries, base>>20, peakHeap>>20, grown>>20, written.Load()>>20)
			if grown > 96<<20 {
				t.Errorf("heap grew by %d MB during the call, want it bounded by the frame limit", grown>>20)
			}
			// The pool still serves: a new session replaced the dead one.
			if _, err := p.ListTools(ctx); err != nil {
				t.Fatalf("after: %v", err)
			}
		})
	}
}

// Session-killing errors: replies after which the go-sdk will not use a
// session again. Each is produced by a real server the test starts (a
// stdio child, a loopback HTTP server), and must make the session dead at
// once and the call either succeed on another session (read-only tool) or
// fail with a *SessionLostError that says whether the tool may have run.

const (
	// misbehaveEnv makes the test binary a go-sdk stdio server that
	// answers one tool call badly (see runMisbehavingStdioServer).
	misbehaveEnv = "MCPOOL_TEST_MISBEHAVE"
	// markerEnv names a file: only the process that creates it misbehaves,
	// so that the session a call is retried on behaves.
	markerEnv = "MCPOOL_TEST_MISBEHAVE_ONCE"
)

// addFaultTools adds "read" (read-only) and "write" (no annotations: not
// safe to run twice) to srv. Both answer "ok"; before answering they call
// before, if set.
func addFaultTools(srv *mcp.Server, before func()) {
	type none struct{}
	handler := func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
		if before != nil {
			before()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "read", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, handler)
	mcp.AddTool(srv, &mcp.Tool{Name: "write"}, handler)
}

// badWriter is the stdio server's stdout. Once armed, it replaces the next
// message the server writes (the armed tool call's reply) with what mode
// asks for.
type badWriter struct {
	mu    sync.Mutex
	out   *os.File
	armed string
}

func (w *badWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	mode := w.armed
	w.armed = ""
	w.mu.Unlock()
	switch mode {
	case "garbage":
		_, err := w.out.Write([]byte("this is not JSON\n"))
		return len(b), err
	case "huge":
		// One frame over the SDK's 16 MB limit (mcp.DefaultMaxLineLength).
		big := bytes.Repeat([]byte("x"), mcp.DefaultMaxLineLength+1<<20)
		w.out.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"x":"`))
		w.out.Write(big)
		_, err := w.out.Write([]byte("\"}}\n"))
		return len(b), err
	case "close":
		// The reader the client reads from ends; the process lives on.
		w.out.Close()
		return len(b), nil
	}
	return w.out.Write(b)
}

func (w *badWriter) Close() error { return nil }

// runMisbehavingStdioServer serves the fault tools over stdio; the first
// call to either is answered as mode says, in the process that wins the
// marker file (every process when no marker is set).
func runMisbehavingStdioServer(mode string) {
	w := &badWriter{out: os.Stdout}
	srv := mcp.NewServer(&mcp.Implementation{Name: "misbehaving", Version: "1"}, nil)
	var once sync.Once
	addFaultTools(srv, func() {
		once.Do(func() {
			if marker := os.Getenv(markerEnv); marker != "" {
				f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return // another process misbehaved already
				}
				f.Close()
			}
			w.mu.Lock()
			w.armed = mode
			w.mu.Unlock()
		})
	})
	t := &mcp.IOTransport{Reader: os.Stdin, Writer: w}
	_ = srv.Run(context.Background(), t)
	os.Exit(0)
}

func misbehavingStdio(t *testing.T, mode string) *mcpool.Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "misbehaved")
	return &mcpool.Command{Path: exe, TerminateTimeout: 200 * time.Millisecond,
		Env: append(os.Environ(), misbehaveEnv+"="+mode, markerEnv+"="+marker, "GORACE=atexit_sleep_ms=0")}
}

// faultCase is one call against a misbehaving server and what must follow.
type faultCase struct {
	tool string
	// retried: the call succeeds on another session (read-only tool, or a
	// request that provably never ran).
	retried bool
	// mayHaveRun is the SessionLostError's MayHaveRun when not retried.
	mayHaveRun bool
}

func checkFaultCall(t *testing.T, p *mcpool.Pool, fc faultCase) {
	t.Helper()
	// Generous: reading 16 MB under the race detector on a loaded machine
	// takes seconds. The test waits for the call's outcome, not a duration.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := p.Stats()
	res, err := p.CallTool(ctx, &mcp.CallToolParams{Name: fc.tool})
	after := p.Stats()
	if after.Deaths != before.Deaths+1 {
		t.Errorf("deaths %d -> %d when the call returned: the broken session was not found dead at once", before.Deaths, after.Deaths)
	}
	if fc.retried {
		if err != nil {
			t.Fatalf("%s: want success on another session, got %v", fc.tool, err)
		}
		if text(res) != "ok" {
			t.Fatalf("%s returned %q", fc.tool, text(res))
		}
		if after.Retries != before.Retries+1 {
			t.Errorf("retries %d -> %d, want one retry", before.Retries, after.Retries)
		}
		return
	}
	var lost *mcpool.SessionLostError
	if !errors.As(err, &lost) {
		t.Fatalf("%s: want a *SessionLostError, got %T: %v", fc.tool, err, err)
	}
	mustIs(t, err, mcpool.ErrSessionLost)
	if lost.MayHaveRun != fc.mayHaveRun || lost.Retried {
		t.Fatalf("%s: MayHaveRun %v Retried %v, want %v false: %v", fc.tool, lost.MayHaveRun, lost.Retried, fc.mayHaveRun, err)
	}
	if strings.Count(err.Error(), "mcpool:") != 1 {
		t.Errorf("prefix repeated: %v", err)
	}
}

func TestSessionKillingStdio(t *testing.T) {
	for _, mode := range []string{"garbage", "huge", "close"} {
		for _, fc := range []faultCase{{tool: "read", retried: true}, {tool: "write", mayHaveRun: true}} {
			t.Run(mode+"/"+fc.tool, func(t *testing.T) {
				p := newPool(t, mcpool.Config{Command: misbehavingStdio(t, mode), MinSessions: 1, HealthCheckInterval: -1})
				if err := p.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				if _, err := p.ListTools(context.Background()); err != nil {
					t.Fatal(err)
				}
				checkFaultCall(t, p, fc)
			})
		}
	}
}

// faultHTTP is a loopback go-sdk server behind a handler that answers the
// next tools/call POST as armed.
type faultHTTP struct {
	armed atomic.Pointer[string]
	url   string
}

func newFaultHTTP(t *testing.T) *faultHTTP {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "faulty", Version: "1"}, nil)
	addFaultTools(srv, nil)
	next := demoserver.Handler(srv, false, 0)
	f := &faultHTTP{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && peekMethod(r) == "tools/call" {
			if mode := f.armed.Swap(nil); mode != nil {
				if f.misbehave(w, r, next, *mode) {
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeServer(ts, srv) })
	f.url = ts.URL
	return f
}

func (f *faultHTTP) arm(mode string) { f.armed.Store(&mode) }

// misbehave answers r as mode says and reports whether it did.
func (f *faultHTTP) misbehave(w http.ResponseWriter, r *http.Request, next http.Handler, mode string) bool {
	switch mode {
	case "content-type":
		// The server runs the call, but its answer is not JSON or SSE.
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ran it, but no JSON for you\n")
	case "bad-json":
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "{not json")
	case "huge-event":
		// An SSE event over the SDK's 16 MB limit (mcp.DefaultMaxEventSize).
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "event: message\ndata: ")
		w.Write(bytes.Repeat([]byte("x"), mcp.DefaultMaxEventSize+1<<20))
		io.WriteString(w, "\n\n")
	case "bad-request":
		// A 400 that is not about the session: nothing proves the request
		// did not run.
		http.Error(w, "Bad Request: something about this request", http.StatusBadRequest)
	case "unknown-session":
		// server-everything's answer to a session it does not know: the
		// request was not run. (No id: the SDK cannot read it as JSON-RPC.)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0",
			"error": map[string]any{"code": -32000, "message": "Bad Request: No valid session ID provided"}})
	default:
		return false
	}
	return true
}

func TestSessionKillingHTTP(t *testing.T) {
	cases := []struct {
		mode string
		fc   faultCase
	}{
		{"content-type", faultCase{tool: "read", retried: true}},
		{"content-type", faultCase{tool: "write", mayHaveRun: true}},
		{"bad-json", faultCase{tool: "read", retried: true}},
		{"bad-json", faultCase{tool: "write", mayHaveRun: true}},
		{"huge-event", faultCase{tool: "read", retried: true}},
		{"huge-event", faultCase{tool: "write", mayHaveRun: true}},
		{"bad-request", faultCase{tool: "read", retried: true}},
		{"bad-request", faultCase{tool: "write", mayHaveRun: true}},
		// Not run: retried even though the tool is not read-only.
		{"unknown-session", faultCase{tool: "write", retried: true}},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.fc.tool, func(t *testing.T) {
			f := newFaultHTTP(t)
			p := newPool(t, mcpool.Config{URL: f.url, MinSessions: 1, HealthCheckInterval: -1})
			ctx := context.Background()
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := p.ListTools(ctx); err != nil {
				t.Fatal(err)
			}
			f.arm(c.mode)
			checkFaultCall(t, p, c.fc)
		})
	}
}

// storeMax stores v in m if it is larger than what m holds.
func storeMax(m *atomic.Int64, v int64) {
	for old := m.Load(); v > old && !m.CompareAndSwap(old, v); old = m.Load() {
	}
}
