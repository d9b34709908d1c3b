// Package mcpoolprom exports mcpool pools to Prometheus, on
// prometheus/client_golang.
//
// One [Collector] serves any number of pools, each under its own server
// label:
//
//	c := mcpoolprom.New(mcpoolprom.Options{})
//	c.AddPool("github", pool)
//	prometheus.MustRegister(c)
//
// or, for a single pool, [Register]. Gauges and most counters are read from
// [mcpool.Pool.Stats] at scrape time, so they agree with it; the histograms
// and the per-tool and per-reason counters come from an [mcpool.Observer]
// that AddPool attaches, so add a pool before it starts to see everything.
// Labels are bounded: the server names you give, the tool names the server
// lists (at most Options.MaxTools per server), and fixed sets of states,
// outcomes and reasons. Identities, tokens and arguments never become
// labels. The metrics are listed in docs/metrics.md.
package mcpoolprom

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mcpool/mcpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Collector. The zero value is ready to use.
type Options struct {
	// AcquireWaitBuckets are the buckets of mcpool_acquire_wait_seconds, in
	// seconds. Nil means DefaultAcquireWaitBuckets.
	AcquireWaitBuckets []float64
	// CallDurationBuckets are the buckets of mcpool_call_duration_seconds,
	// in seconds. Nil means DefaultCallDurationBuckets.
	CallDurationBuckets []float64
	// MaxTools caps the distinct tool label values per server; calls to
	// further tools are counted under the tool label "_other", so that calls
	// to names a server never listed cannot grow the series without bound.
	// Zero means 256.
	MaxTools int
}

// Default buckets, in seconds.
var (
	// DefaultAcquireWaitBuckets spans an uncontended acquire (well under a
	// millisecond) to a long queue.
	DefaultAcquireWaitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// DefaultCallDurationBuckets spans a loopback call (about half a
	// millisecond) to a minute-long tool.
	DefaultCallDurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// otherTool is the tool label of calls beyond Options.MaxTools.
const otherTool = "_other"

// Collector is a prometheus.Collector for mcpool pools, keyed pools and
// groups of servers. It is safe for
// concurrent use.
type Collector struct {
	maxTools int

	acquireWait  *prometheus.HistogramVec
	callDuration *prometheus.HistogramVec
	calls        *prometheus.CounterVec
	closed       *prometheus.CounterVec

	mu      sync.Mutex
	sources []source
	groups  []Servers
	// observed are the groups' pools this Collector observes: a pool a
	// group gains later (an update) is observed at the next scrape or
	// SyncGroups, once.
	observed map[*mcpool.Pool]bool
	tools    map[string]map[string]bool // server → tool names labelled so far
	// observing are the server names observers were made for: the names
	// that may have event series (calls, durations, waits, closes).
	observing map[string]bool
}

// source is one registered pool (or keyed pool) and how to read it.
type source struct {
	server string
	stats  func() mcpool.Stats
}

// New returns a Collector with no pools.
func New(opts Options) *Collector {
	waitBuckets := opts.AcquireWaitBuckets
	if waitBuckets == nil {
		waitBuckets = DefaultAcquireWaitBuckets
	}
	callBuckets := opts.CallDurationBuckets
	if callBuckets == nil {
		callBuckets = DefaultCallDurationBuckets
	}
	c := &Collector{maxTools: opts.MaxTools, tools: map[string]map[string]bool{}, observed: map[*mcpool.Pool]bool{}, observing: map[string]bool{}}
	if c.maxTools <= 0 {
		c.maxTools = 256
	}
	c.acquireWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpool_acquire_wait_seconds",
		Help:    "Time successful acquires waited for room on a session.",
		Buckets: waitBuckets,
	}, []string{"server"})
	c.callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpool_call_duration_seconds",
		Help:    "Duration of CallTool, acquire and retries included, by tool and outcome.",
		Buckets: callBuckets,
	}, []string{"server", "tool", "outcome"})
	c.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpool_calls_total",
		Help: "CallTool calls by tool and outcome.",
	}, []string{"server", "tool", "outcome"})
	c.closed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpool_sessions_closed_total",
		Help: "Sessions closed, by reason: dead, lifetime, idle or closed (the pool closed).",
	}, []string{"server", "reason"})
	return c
}

// Register makes a Collector, adds p to it under the given server name and
// registers it with reg (prometheus.DefaultRegisterer if nil). Use [New]
// and AddPool for several pools: one Collector serves them all.
func Register(reg prometheus.Registerer, server string, p *mcpool.Pool) (*Collector, error) {
	c := New(Options{})
	if err := c.AddPool(server, p); err != nil {
		return nil, err
	}
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return c, nil
}

// ErrDuplicateServer is returned by AddPool and AddKeyed for a server name
// already added.
var ErrDuplicateServer = errors.New("mcpoolprom: server name already added: give each pool its own")

// AddPool exports p under the label server="name" and attaches an observer
// to it (see [mcpool.Pool.Observe]). It returns ErrDuplicateServer if the
// name is taken.
func (c *Collector) AddPool(server string, p *mcpool.Pool) error {
	if err := c.add(source{server: server, stats: p.Stats}); err != nil {
		return err
	}
	p.Observe(c.observer(server))
	return nil
}

// AddKeyed exports a keyed pool under the label server="name": the Stats of
// its identities' pools summed ([mcpool.Keyed.PoolStats]), and the events
// of all of them. Identities never appear in the metrics.
func (c *Collector) AddKeyed(server string, k *mcpool.Keyed) error {
	if err := c.add(source{server: server, stats: k.PoolStats}); err != nil {
		return err
	}
	k.Observe(c.observer(server))
	return nil
}

// Remove stops exporting the server added under that name with AddPool or
// AddKeyed, and reports whether there was one: its figures leave the next
// scrape, and the name may be added again (a keyed pool made anew by a
// gateway's reload, say); added again before the next scrape, its event
// counters go on from where they were. A group's servers follow their
// group instead (AddGroup). The pool's observer stays attached: remove a
// pool once it is closed. It is safe for concurrent use.
func (c *Collector) Remove(server string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.sources, func(s source) bool { return s.server == server })
	if i < 0 {
		return false
	}
	c.sources = slices.Delete(c.sources, i, i+1)
	return true
}

// Servers is what AddGroup reads of a group of servers, such as an
// *mcpool.Group: its server names and each server's pools (its replicas).
type Servers interface {
	Servers() []string
	Replicas(server string) []*mcpool.Pool
}

// AddGroup exports every server of g under its own server label, the
// Stats of its replicas summed ([mcpool.SumStats]) and the events of all
// of them counted together. g is read at every scrape: servers it gains
// later (an [mcpool.Group.Update]) are exported from then on, those it
// loses are not any more, and the pools of added or replaced servers are
// observed from the next scrape or [Collector.SyncGroups], whichever comes
// first (call SyncGroups after an update to count their events from the
// start). It returns ErrDuplicateServer, adding nothing, if a server name
// of g is taken now; a name taken later is exported once, by whichever
// source was added first.
func (c *Collector) AddGroup(g Servers) error {
	names := g.Servers()
	c.mu.Lock()
	taken := c.namesLocked()
	for _, name := range names {
		if taken[name] {
			c.mu.Unlock()
			return fmt.Errorf("%w (%q)", ErrDuplicateServer, name)
		}
	}
	c.groups = append(c.groups, g)
	c.mu.Unlock()
	c.SyncGroups()
	return nil
}

// SyncGroups observes the pools the groups added with AddGroup have now
// and forgets those they no longer have. Scrapes call it too; call it
// after updating a group so that its new pools' events are counted from
// their start. It is safe for concurrent use.
func (c *Collector) SyncGroups() {
	c.mu.Lock()
	groups := slices.Clone(c.groups)
	c.mu.Unlock()
	current := map[*mcpool.Pool]bool{}
	for _, g := range groups {
		for _, name := range g.Servers() {
			var fresh []*mcpool.Pool
			c.mu.Lock()
			for _, p := range g.Replicas(name) {
				current[p] = true
				if !c.observed[p] {
					c.observed[p] = true
					fresh = append(fresh, p)
				}
			}
			c.mu.Unlock()
			if len(fresh) > 0 {
				o := c.observer(name)
				for _, p := range fresh {
					p.Observe(o)
				}
			}
		}
	}
	c.mu.Lock()
	for p := range c.observed {
		if !current[p] {
			delete(c.observed, p) // closed by the group's update
		}
	}
	c.mu.Unlock()
}

// forgetGone drops the event series (calls, their durations, acquire
// waits, closed sessions) of the servers not in exported: a group's server
// that an update removed, a name Remove let go and nothing took again.
// Without it a removed server's counters would stay in every scrape. A
// name exported again later starts its counters anew, which Prometheus
// reads as a counter reset.
func (c *Collector) forgetGone(exported []source) {
	names := map[string]bool{}
	for _, s := range exported {
		names[s.server] = true
	}
	var gone []string
	c.mu.Lock()
	for name := range c.observing {
		if !names[name] {
			gone = append(gone, name)
			delete(c.observing, name)
			delete(c.tools, name)
		}
	}
	c.mu.Unlock()
	for _, name := range gone {
		l := prometheus.Labels{"server": name}
		c.acquireWait.DeletePartialMatch(l)
		c.callDuration.DeletePartialMatch(l)
		c.calls.DeletePartialMatch(l)
		c.closed.DeletePartialMatch(l)
	}
}

// groupSources returns a source per server of the groups now, leaving out
// names taken by the sources added before.
func (c *Collector) groupSources() []source {
	c.mu.Lock()
	groups := slices.Clone(c.groups)
	taken := map[string]bool{}
	for _, s := range c.sources {
		taken[s.server] = true
	}
	c.mu.Unlock()
	var out []source
	for _, g := range groups {
		for _, name := range g.Servers() {
			if taken[name] {
				continue
			}
			taken[name] = true
			pools := g.Replicas(name)
			out = append(out, source{server: name, stats: func() mcpool.Stats {
				all := make([]mcpool.Stats, len(pools))
				for i, p := range pools {
					all[i] = p.Stats()
				}
				return mcpool.SumStats(all...)
			}})
		}
	}
	return out
}

// namesLocked returns the server names exported now.
func (c *Collector) namesLocked() map[string]bool {
	taken := map[string]bool{}
	for _, s := range c.sources {
		taken[s.server] = true
	}
	for _, g := range c.groups {
		for _, name := range g.Servers() {
			taken[name] = true
		}
	}
	return taken
}

func (c *Collector) add(s source) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.namesLocked()[s.server] {
		return fmt.Errorf("%w (%q)", ErrDuplicateServer, s.server)
	}
	c.sources = append(c.sources, s)
	return nil
}

func (c *Collector) observer(server string) mcpool.Observer {
	c.mu.Lock()
	c.observing[server] = true
	c.mu.Unlock()
	wait := c.acquireWait.WithLabelValues(server)
	return mcpool.Observer{
		AcquireEnd: func(_ context.Context, e mcpool.AcquireEvent) {
			if e.Err == nil {
				wait.Observe(e.Wait.Seconds())
			}
		},
		CallEnd: func(_ context.Context, e mcpool.CallEvent) {
			tool := c.toolLabel(server, e.Tool)
			c.calls.WithLabelValues(server, tool, e.Outcome).Inc()
			c.callDuration.WithLabelValues(server, tool, e.Outcome).Observe(e.Duration.Seconds())
		},
		SessionClosed: func(e mcpool.SessionEvent) {
			c.closed.WithLabelValues(server, e.Reason).Inc()
		},
	}
}

// toolLabel bounds the tool label values of one server.
func (c *Collector) toolLabel(server, tool string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	known := c.tools[server]
	if known == nil {
		known = map[string]bool{}
		c.tools[server] = known
	}
	if known[tool] {
		return tool
	}
	if len(known) >= c.maxTools {
		return otherTool
	}
	known[tool] = true
	return tool
}
