package mcpool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callsPerSession counts the tool calls each server session handled.
type callsPerSession struct {
	mu sync.Mutex
	n  map[*mcp.ServerSession]int
}

func (c *callsPerSession) onCall(ss *mcp.ServerSession, _ string) func() {
	c.mu.Lock()
	c.n[ss]++
	c.mu.Unlock()
	return func() {}
}

func (c *callsPerSession) counts() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, n := range c.n {
		out = append(out, n)
	}
	return out
}

// A server that handles one call at a time per session (a single-threaded
// stdio server is one process, one core): 32 concurrent callers must be
// spread over MaxSessions sessions, each doing a fair share, instead of
// queueing behind each other on the one session that had room (before,
// all 32 went to session 1 and the three other sessions MaxSessions allows
// were never opened). One caller at a time still uses one session.
func TestSerialServerSpreadsAcrossSessions(t *testing.T) {
	cps := &callsPerSession{n: map[*mcp.ServerSession]int{}}
	srv := demoserver.New(demoserver.Options{Serial: true, OnCall: cps.onCall})
	transport, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: transport, MaxSessions: 4})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 20 { // one caller at a time: one session
		if _, err := sleepCall(p, ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.SessionsCreated != 1 {
		t.Fatalf("one caller at a time connected %d sessions, want 1", st.SessionsCreated)
	}

	const callers, each = 32, 20
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := sleepCall(p, cctx, 2)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := p.Stats()
	counts := cps.counts()
	t.Logf("calls per server session: %v; stats: created %d", counts, st.SessionsCreated)
	if st.SessionsCreated != 4 || len(counts) != 4 {
		t.Fatalf("32 callers on a serial server opened %d sessions (server saw %d), want MaxSessions (4)", st.SessionsCreated, len(counts))
	}
	// Every session did a fair share: at least half of an even split of
	// the concurrent calls (the first session also did the 20 serial ones).
	for _, n := range counts {
		if n < callers*each/4/2 {
			t.Fatalf("calls per session %v: a session carried less than half its share of %d", counts, callers*each/4)
		}
	}
}

// A cold pool facing more callers than sessions connects the sessions the
// demand needs at once, up to MaxSessions, while the first calls are
// still running: 8 callers and MaxSessions 4 get 4 sessions before any
// call has returned (before, the pool connected another session only
// once every session carried a call, one at a time).
func TestColdPoolConnectsWhatTheDemandNeeds(t *testing.T) {
	release := make(chan struct{})
	transport, _ := inMemory(adaptServer(release))
	p := newPool(t, mcpool.Config{NewTransport: transport, MaxSessions: 4})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.SessionsCreated != 1 {
		t.Fatalf("Start connected %d sessions, want MinSessions (1)", st.SessionsCreated)
	}
	const callers = 8
	var wg sync.WaitGroup
	var returned atomic.Int32
	for range callers {
		wg.Go(func() {
			defer returned.Add(1)
			if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "block"}); err != nil {
				t.Error(err)
			}
		})
	}
	eventuallyWithin(t, limitWait, "4 sessions and all 8 calls in flight", func() bool {
		st := p.Stats()
		return st.Sessions == 4 && st.CallsInFlight == callers
	})
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d calls returned before the sessions were connected; the tool blocks", n)
	}
	if st := p.Stats(); st.SessionsCreated != 4 {
		t.Fatalf("%d sessions created, want MaxSessions (4)", st.SessionsCreated)
	}
	close(release)
	wg.Wait()
}
