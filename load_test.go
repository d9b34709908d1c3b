package mcpool_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// 500 concurrent callers: MaxSessions is never exceeded and no session ever
// carries more than MaxCallsPerSession calls, counted at the server.
func TestCapsHoldUnderLoad(t *testing.T) {
	for _, tc := range []struct{ maxSessions, perSession int }{{4, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("sessions=%d,calls=%d", tc.maxSessions, tc.perSession), func(t *testing.T) {
			conc := newConcurrency()
			srv := demoserver.New(demoserver.Options{OnCall: conc.onCall})
			p := newPool(t, mcpool.Config{
				URL:         httpServer(t, srv, false),
				MaxSessions: tc.maxSessions, MaxCallsPerSession: tc.perSession,
				AcquireTimeout: -1,
			})
			ctx := context.Background()
			const callers = 500
			var wg sync.WaitGroup
			for i := range callers {
				ms := 1 + i%3
				if tc.perSession > 1 {
					// Calls that wait long enough for more calls per
					// session to pay: the per-session limit starts at
					// one and grows only where it does.
					ms += 20
				}
				wg.Go(func() {
					if _, err := sleepCall(p, ctx, ms); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			maxPer, sessions := conc.figures()
			if sessions > tc.maxSessions || maxPer > tc.perSession {
				t.Fatalf("server saw %d sessions and up to %d calls on one; caps %d and %d",
					sessions, maxPer, tc.maxSessions, tc.perSession)
			}
			// The load must have been high enough to test the caps at all.
			if sessions != tc.maxSessions || maxPer != tc.perSession {
				t.Fatalf("load too light: %d sessions, %d calls per session", sessions, maxPer)
			}
			st := p.Stats()
			if st.Acquires != callers || st.CallsInFlight != 0 || st.Waiters != 0 ||
				st.SessionsCreated != uint64(tc.maxSessions) || st.Errors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// methodRecorder counts JSON-RPC methods as they reach an HTTP server.
type methodRecorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (m *methodRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if meth := r.Header.Get("Mcp-Method"); meth != "" {
				m.add(meth)
			} else {
				m.add(peekMethod(r))
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (m *methodRecorder) add(meth string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[meth]++
}

func (m *methodRecorder) count(meth string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[meth]
}

// Once a session has negotiated a version, later sessions pin it and skip
// the server/discover probe.
func TestProtocolVersionIsRemembered(t *testing.T) {
	rec := &methodRecorder{}
	ts := httptest.NewServer(rec.wrap(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0)))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, MaxSessions: 3, MaxCallsPerSession: 1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().ProtocolVersion; got != "2025-11-25" {
		t.Fatalf("negotiated %q, want 2025-11-25 from a stateful go-sdk server", got)
	}
	probes := rec.count("server/discover")
	if probes != 1 {
		t.Fatalf("first connect sent %d server/discover, want 1", probes)
	}
	var leases []mcpool.Lease
	for range 3 { // forces two more sessions
		l, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for i := range leases {
		leases[i].Release()
	}
	if got := rec.count("server/discover"); got != probes {
		t.Fatalf("later sessions sent %d more server/discover", got-probes)
	}
	if got := rec.count("initialize"); got != 3 {
		t.Fatalf("%d initialize, want 3", got)
	}
}
