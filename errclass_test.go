package mcpool_test

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
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
// tools/call with 64 MB of text, as an event stream or as JSON.
func bigHTTP(t *testing.T, sse bool, calls *atomic.Int64) string {
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
			for n := 0; n < bigAnswer; n += len(chunk) {
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
	var calls atomic.Int64
	cases := []struct {
		name string
		cfg  func(t *testing.T) mcpool.Config
	}{
		{"http/sse", func(t *testing.T) mcpool.Config { return mcpool.Config{URL: bigHTTP(t, true, &calls)} }},
		{"http/json", func(t *testing.T) mcpool.Config { return mcpool.Config{URL: bigHTTP(t, false, &calls)} }},
		{"stdio", func(t *testing.T) mcpool.Config {
			call := `echo x >> "$CALLS"; printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' "$id"; cat "$BIG"; printf '"}]}}\n'`
			return mcpool.Config{Command: shServer(shMCP, "BIG="+bigFile(t, bigAnswer), "CALL="+call,
				"CALLS="+filepath.Join(t.TempDir(), "calls"))}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
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
			// Reading up to the limit (16 MB, twice with the retry) is the
			// cost; under -race the SDK's decoder scans it several times
			// slower. Either way well before the caller's 30s deadline.
			within := time.Second
			if raceDetector {
				within = 10 * time.Second
			}
			if took > within {
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
			t.Logf("%s: failed in %v with %d retries; heap in use %d MB before, peak %d MB (+%d MB)",
				c.name, took.Round(time.Millisecond), retries, base>>20, peakHeap>>20, grown>>20)
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
