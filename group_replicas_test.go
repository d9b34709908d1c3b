package mcpool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// replicaConfig is a replica's pool: two warm sessions, and a breaker that
// stays open once the replica is gone so that the test sees it out.
func replicaConfig(url string) mcpool.Config {
	return mcpool.Config{URL: url, MinSessions: 2, MaxSessions: 4,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		FailureThreshold: 3, BreakerCooldown: time.Minute, Logger: quiet}
}

// Two go-sdk demo servers behind one server entry and 16 callers of a
// read-only tool: least-loaded splits the calls evenly (within 25 %), and
// killing one replica mid-load costs no call: those in flight on it move
// to the other replica, and new calls go there.
func TestGroupReplicaKilledMidLoad(t *testing.T) {
	a, b := startReplica(t), startReplica(t)
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name:     "demo",
		Replicas: []mcpool.Config{replicaConfig(a.url), replicaConfig(b.url)},
	}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}

	const callers = 16
	var (
		stop     atomic.Bool
		ok, fail atomic.Int64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__sleep", Arguments: map[string]any{"ms": 5}})
				if err == nil && res.IsError {
					err = errIsError
				}
				if err != nil {
					fail.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// Before the kill: both replicas serve, least-loaded within 25 % of an
	// even split.
	eventually(t, "400 calls served before the kill", func() bool { return a.count()+b.count() >= 400 })
	replicas := func() []mcpool.ReplicaStats { return g.Stats().Servers[0].Replicas }
	eventually(t, "calls in flight on the replica to kill", func() bool { return replicas()[1].InFlight > 0 })
	na, nb := a.count(), b.count()
	b.kill()
	if diff := float64(na-nb) / float64(na+nb); diff > 0.25 || diff < -0.25 {
		t.Errorf("least-loaded split %d/%d: more than 25 %% off even", na, nb)
	}
	t.Logf("before the kill: replica A %d calls, replica B %d", na, nb)

	// After: another 400 calls, all on the replica left.
	atKill := a.count()
	eventually(t, "400 calls on the surviving replica", func() bool { return a.count() >= atKill+400 })
	stop.Store(true)
	wg.Wait()
	if n := fail.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed across the kill; first: %v", n, n+ok.Load(), *firstErr.Load())
	}
	rs := replicas()
	if rs[1].TakesCalls {
		t.Error("the killed replica still takes calls")
	}
	if rs[1].Failovers == 0 {
		t.Error("no call moved off the killed replica, though calls were in flight on it")
	}
	t.Logf("after: %d calls ok, 0 failed; replica B: %d failed attempts moved to A; A pool %+v", ok.Load(), rs[1].Failovers, rs[0].Pool.Status)
}

var errIsError = errorString("the tool reported isError")

type errorString string

func (e errorString) Error() string { return string(e) }

// Round-robin alternates; failover keeps to the first replica until it is
// gone, then uses the next.
func TestGroupBalancePolicies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call := func(g *mcpool.Group, n int) {
		t.Helper()
		for range n {
			if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	a, b := startReplica(t), startReplica(t)
	rr := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "demo", Balance: mcpool.RoundRobin,
		Replicas: []mcpool.Config{replicaConfig(a.url), replicaConfig(b.url)},
	}}})
	if err := rr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	call(rr, 10)
	if a.count() != 5 || b.count() != 5 {
		t.Errorf("round-robin split 10 calls %d/%d, want 5/5", a.count(), b.count())
	}

	c, d := startReplica(t), startReplica(t)
	fo := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{
		Name: "demo", Balance: mcpool.Failover,
		Replicas: []mcpool.Config{replicaConfig(c.url), replicaConfig(d.url)},
	}}})
	if err := fo.Start(ctx); err != nil {
		t.Fatal(err)
	}
	call(fo, 6)
	if c.count() != 6 || d.count() != 0 {
		t.Errorf("failover: %d/%d, want 6/0", c.count(), d.count())
	}
	c.kill()
	call(fo, 6)
	if c.count() != 6 || d.count() != 6 {
		t.Errorf("failover after the first replica died: %d/%d, want 6/6", c.count(), d.count())
	}
}

// A stdio server's replicas are separate pools of processes; calls spread
// over them as over URLs.
func TestGroupStdioReplicas(t *testing.T) {
	file := `{"mcpServers": {"local": {"command": "CMD"}}, "mcpool": {"servers": {"local": {"replicas": 2, "balance": "round-robin"}}}}`
	cf, err := config.Parse("mcp.json", []byte(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	gc := &cf.Group
	cmd := stdioCommand(t)
	for i := range gc.Servers[0].Replicas {
		gc.Servers[0].Replicas[i].Command = cmd
	}
	g := newGroup(t, *gc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "local__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	rs := g.Stats().Servers[0].Replicas
	if len(rs) != 2 || rs[0].Calls != 3 || rs[1].Calls != 3 || rs[0].Pool.Sessions != 1 || rs[1].Pool.Sessions != 1 {
		t.Errorf("replicas: %+v", rs)
	}
	if rs[0].Target != "stdio:"+cmd.Path {
		t.Errorf("target %q", rs[0].Target)
	}
}
