package mcpool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startHoldReplica is startReplica with one more read-only tool, "hold":
// on a holding replica it blocks until its call is cancelled or the
// replica is killed, on another it answers "ok" at once. count() counts the hold calls
// that reached the server, from their start.
func startHoldReplica(t *testing.T, holding bool) *replicaServer {
	t.Helper()
	return startHoldReplicaAt(t, "127.0.0.1:0", holding)
}

// startHoldReplicaAt is startHoldReplica listening on addr: a replica
// restarted where a killed one was.
func startHoldReplicaAt(t *testing.T, addr string, holding bool) *replicaServer {
	t.Helper()
	r := &replicaServer{}
	release := make(chan struct{})
	srv := demoserver.New(demoserver.Options{})
	type none struct{}
	mcp.AddTool(srv, &mcp.Tool{Name: "hold", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			r.mu.Lock()
			r.n++
			r.mu.Unlock()
			if holding {
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-release:
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: demoserver.Handler(srv, false, 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	var once sync.Once
	r.kill = func() {
		once.Do(func() {
			_ = hs.Close() // every connection: the client's session dies
			close(release) // a held call ends, its answer undeliverable
			<-done
			for ss := range srv.Sessions() {
				_ = ss.Close()
			}
		})
	}
	t.Cleanup(r.kill)
	r.url = fmt.Sprintf("http://%s/mcp", ln.Addr())
	return r
}

// A read-only call caught on a replica that dies moves to the healthy
// replica well within the caller's deadline, although the dead replica's
// breaker is still closed (it opens only after BreakerOpenAfter): the
// dead replica's pool does not keep the call queued for a reconnect while
// another replica can serve it.
func TestGroupFailoverWithinCallerDeadline(t *testing.T) {
	a, b := startHoldReplica(t, true), startHoldReplica(t, false)
	cfg := func(url string) mcpool.Config {
		return mcpool.Config{URL: url, MinSessions: 1, MaxSessions: 2, BreakerOpenAfter: time.Hour, Logger: quiet}
	}
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "demo", Balance: mcpool.Failover,
		Replicas: []mcpool.Config{cfg(a.url), cfg(b.url)},
	}}})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Start returns once one replica is up: let A, the one Failover
	// prefers, come up too.
	eventually(t, "both replicas taking calls", func() bool {
		r := g.Stats().Servers[0].Replicas
		return r[0].TakesCalls && r[1].TakesCalls
	})
	// Generous: the breaker stays closed far longer, so a call that waits
	// for replica A's reconnects runs this ctx out.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__hold"})
		done <- result{res, err}
	}()
	eventually(t, "the call running on replica A", func() bool { return a.count() == 1 })
	a.kill()
	got := <-done
	if got.err != nil {
		t.Fatalf("a read-only call on a killed replica did not move to the live one: %v", got.err)
	}
	if s := text(got.res); s != "ok" {
		t.Errorf("result %q, want ok from replica B", s)
	}
	if n := b.count(); n != 1 {
		t.Errorf("replica B served %d calls, want 1", n)
	}
	if f := g.Stats().Servers[0].Replicas[0].Failovers; f != 1 {
		t.Errorf("replica A's Failovers = %d, want 1", f)
	}
}

// A group whose only replica dies under a call still waits, within the
// caller's ctx, through the replica's restart, failed reconnects and all:
// the fail-fast rule that lets a call move applies only while another
// replica is left to try.
func TestGroupSingleReplicaWaitsThroughRestart(t *testing.T) {
	a := startHoldReplica(t, true)
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "demo", Config: mcpool.Config{URL: a.url, MinSessions: 1, MaxSessions: 1,
			BreakerOpenAfter: time.Hour, BackoffInitial: time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: quiet},
	}}})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__hold"})
		done <- result{res, err}
	}()
	eventually(t, "the call running on the replica", func() bool { return a.count() == 1 })
	a.kill()
	p := g.Pool("demo")
	eventually(t, "reconnects failing", func() bool { return p.Stats().ConnectErrors >= 2 })
	addr := strings.TrimSuffix(strings.TrimPrefix(a.url, "http://"), "/mcp")
	restarted := startHoldReplicaAt(t, addr, false)
	got := <-done
	if got.err != nil {
		t.Fatalf("the call did not wait through its only replica's restart: %v", got.err)
	}
	if s := text(got.res); s != "ok" || restarted.count() != 1 {
		t.Errorf("result %q, restarted replica served %d calls; want ok and 1", s, restarted.count())
	}
	// Before the restarted replica's cleanup, registered last, runs first.
	if err := g.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// Once one replica of a server has started, Group.Start stops waiting for
// a replica whose connects fail: it does not wait until that replica's
// breaker opens (an hour here) or the caller's ctx ends. The dead replica
// goes on connecting in the background.
func TestGroupStartReturnsWhenAReplicaStarted(t *testing.T) {
	a := startReplica(t)
	dead := "http://" + closedAddr(t) + "/mcp"
	cfg := func(url string) mcpool.Config {
		return mcpool.Config{URL: url, BreakerOpenAfter: time.Hour, Logger: quiet}
	}
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "demo", Replicas: []mcpool.Config{cfg(dead), cfg(a.url)},
	}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("Group.Start with one live replica: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Group.Start waited for the dead replica until its ctx ended")
	}
	if st := g.Replicas("demo")[0].Stats(); st.Closed {
		t.Error("the dead replica's pool was closed; it should go on connecting")
	}
	eventually(t, "the dead replica still connecting in the background", func() bool {
		return g.Replicas("demo")[0].Stats().ConnectErrors >= 2
	})
}

// A 429 proves the request did not run: a call to a tool with side
// effects that its replica rate-limits moves to another replica.
func TestGroupRateLimitedMovesSideEffectTool(t *testing.T) {
	la, lb := newLimiter(t), newLimiter(t)
	cfg := func(url string) mcpool.Config {
		return mcpool.Config{URL: url, HealthCheckInterval: -1, BackoffInitial: time.Millisecond, Logger: quiet}
	}
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "s", Balance: mcpool.Failover, Replicas: []mcpool.Config{cfg(la.url), cfg(lb.url)},
	}}})
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	la.limit(2, "") // the call and the pool's one retry
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "s__write"})
	if err != nil {
		t.Fatalf("a rate-limited call did not move to the other replica: %v", err)
	}
	if s := text(res); s != "ok" {
		t.Errorf("result %q, want ok", s)
	}
	if na, nb := len(la.calls()), len(lb.calls()); na != 2 || nb != 1 {
		t.Errorf("replica A saw %d tools/call, B %d; want 2 (both 429) and 1", na, nb)
	}
}

// A Group.Close that returned ErrCloseIncomplete can be called again to
// wait for the teardown, as Pool.Close can.
func TestGroupCloseWaitsAgain(t *testing.T) {
	proxy, url := partitionedServer(t)
	g, err := mcpool.NewGroup(mcpool.GroupConfig{Logger: quiet, Servers: []mcpool.ServerConfig{{Name: "s", Config: mcpool.Config{URL: url, HealthCheckInterval: -1}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Stall() // the session's DELETE hangs until Heal
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := g.Close(short); !errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("first Close against a stalled server: %v, want ErrCloseIncomplete", err)
	}
	proxy.Heal()
	long, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	// Heal resets the stalled DELETE: the teardown ends, with that error.
	if err := g.Close(long); errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("second Close did not wait for the teardown: %v", err)
	}
	if st := g.Pool("s").Stats(); !st.Closed || st.Sessions != 0 || st.SessionsDestroyed != 1 {
		t.Errorf("after the second Close: %+v", st)
	}
}

// A group that was never started, whose first replica is down, lists and
// calls on the live one at the first failed connect of the down one, in
// every balance mode, instead of riding out the down one's connects
// (10s by default) while the catalog is fetched.
func TestGroupFirstReplicaDownWithoutStart(t *testing.T) {
	down := "http://" + closedAddr(t) + "/mcp"
	up := startHoldReplica(t, false)
	for _, balance := range []mcpool.Balance{mcpool.Failover, mcpool.RoundRobin, mcpool.LeastLoaded} {
		t.Run(fmt.Sprint(balance), func(t *testing.T) {
			g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
				Name: "demo", Balance: balance,
				Replicas: []mcpool.Config{{URL: down, Logger: quiet}, {URL: up.url, Logger: quiet}},
			}}})
			// Far below the down replica's ride-out: only a list that
			// moves on at its first failed connect meets it.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := g.ListTools(ctx); err != nil {
				t.Fatalf("ListTools: %v", err)
			}
			res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__hold"})
			if err != nil {
				t.Fatalf("CallTool: %v", err)
			}
			if s := text(res); s != "ok" {
				t.Errorf("result %q, want ok from the live replica", s)
			}
		})
	}
}
