package mcpool

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// replica is one pool of a server, with the group's figures for it.
type replica struct {
	pool   *Pool
	target string // the pool's target, without credentials

	inFlight  atomic.Int64  // calls from the group in flight on it
	calls     atomic.Uint64 // calls (and list fetches) sent to it
	errors    atomic.Uint64 // of which failed
	failovers atomic.Uint64 // of which then moved to another replica
}

// serverAnswered reports whether err is the server's own JSON-RPC error
// (not one the SDK made for a request that failed in transit), which
// another replica would give as well.
func serverAnswered(err error) bool {
	var rpcErr *jsonrpc.Error
	return errors.As(err, &rpcErr) && rpcErr.Code != codeRejected
}

// GroupStats is a snapshot of a [Group], from [Group.Stats].
type GroupStats struct {
	Servers []ServerStats // in configuration order
}

// ServerStats describes one server of a group. It holds no header, token,
// environment value or URL query: targets are shown without credentials.
type ServerStats struct {
	Name string
	// Status, Health and HealthScore combine the replicas' own, as
	// [SumStats] does: unavailable when every replica is (closed, or its
	// breaker open with no session left), healthy and connected when every
	// replica is, degraded otherwise; the score is the mean of the
	// replicas'.
	Status      Status
	Health      Health
	HealthScore float64
	// Tools is the number of tools in the server's part of the catalog,
	// as of the latest ListTools that reached it; -1 before one did.
	Tools int
	// ListError is why the latest attempt to list the server's tools,
	// prompts or resources failed, "" when the latest worked: the server
	// was left out of the merged list.
	ListError string
	// Sessions and CallsInFlight are summed over the replicas.
	Sessions      int
	CallsInFlight int
	// Calls counts calls (tool calls, prompts, resource reads; not list
	// fetches) the group sent to the server's
	// replicas; Errors those that failed, Failovers those then moved to
	// another replica (each attempt counts once).
	Calls, Errors, Failovers uint64
	Replicas                 []ReplicaStats
}

// ReplicaStats describes one replica of a server.
type ReplicaStats struct {
	// Target is the replica's URL without user info or query, or
	// "stdio:" and its program (arguments can carry secrets).
	Target string
	// InFlight is the group's calls in flight on it: what LeastLoaded
	// balances.
	InFlight                 int
	Calls, Errors, Failovers uint64
	// TakesCalls reports whether the replica can take calls now: its
	// breaker is not open and it has a live session.
	TakesCalls bool
	Pool       Stats // the replica's pool
}

// Stats returns a snapshot of every server and replica. It costs one
// [Pool.Stats] per replica; it does no I/O.
func (g *Group) Stats() GroupStats {
	var st GroupStats
	for _, m := range g.state().members {
		st.Servers = append(st.Servers, m.stats())
	}
	return st
}

func (m *member) stats() ServerStats {
	g := m.g
	ss := ServerStats{Name: m.name, Tools: -1}
	m.mu.Lock()
	if m.tools != nil && m.tools.built {
		ss.Tools = len(m.tools.out)
	}
	for _, err := range []error{partErr(m.tools), partErr(m.prompts), partErr(m.resources)} {
		if err != nil && ss.ListError == "" {
			ss.ListError = g.red.string(unprefixed(err))
		}
	}
	m.mu.Unlock()
	pools := make([]Stats, 0, len(m.replicas))
	for _, r := range m.replicas {
		rs := ReplicaStats{
			Target: r.target, InFlight: int(r.inFlight.Load()),
			Calls: r.calls.Load(), Errors: r.errors.Load(), Failovers: r.failovers.Load(),
			TakesCalls: r.pool.takesCalls(), Pool: r.pool.Stats(),
		}
		ss.Sessions += rs.Pool.Sessions
		ss.CallsInFlight += rs.Pool.CallsInFlight
		ss.Calls += rs.Calls
		ss.Errors += rs.Errors
		ss.Failovers += rs.Failovers
		pools = append(pools, rs.Pool)
		ss.Replicas = append(ss.Replicas, rs)
	}
	ss.Status, ss.Health, ss.HealthScore = sumHealth(pools)
	return ss
}

// ServerStats returns a snapshot of the server and its replicas, as
// [Group.Stats] gives it. It does no I/O.
func (s *GroupServer) ServerStats() ServerStats { return s.m.stats() }

// Stats sums the server's replicas' pools ([SumStats]), with the group's
// Status for the server (see ServerStats.Status), the catalog store's state
// of the replicas ("failing" if any is), and a Breaker that names every
// replica's breaker state: "closed" for one replica, "2 closed, 1 open"
// for several. It does no I/O.
func (s *GroupServer) Stats() Stats {
	ss := s.m.stats()
	all := make([]Stats, len(ss.Replicas))
	breakers := map[string]int{}
	store := ""
	for i, r := range ss.Replicas {
		all[i] = r.Pool
		breakers[r.Pool.Breaker]++
		if r.Pool.Store != "" && store != "failing" {
			store = r.Pool.Store
		}
	}
	st := SumStats(all...)
	st.Store = store // Status, Health and HealthScore: SumStats, the same rule as ss
	var parts []string
	for _, b := range []string{"closed", "half-open", "open", "disabled"} {
		if n := breakers[b]; n > 0 {
			if len(ss.Replicas) == 1 {
				parts = append(parts, b)
			} else {
				parts = append(parts, strconv.Itoa(n)+" "+b)
			}
		}
	}
	st.Breaker = strings.Join(parts, ", ")
	return st
}

func partErr[T any](pt *part[T]) error {
	if pt == nil {
		return nil
	}
	return pt.err
}
