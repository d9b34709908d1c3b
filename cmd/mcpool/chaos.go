package main

// bench --chaos: faults injected at a fixed interval while a mode runs, so
// that anyone can watch the pool heal.
//
//   - stdio (--stdio): every interval, SIGKILL one of the server processes
//     that bench started and has not closed. The processes are known
//     exactly: bench builds each mcp.CommandTransport itself (through
//     Config.NewTransport for the pools) and records the process it
//     starts.
//   - HTTP (the embedded server, --url, --sse): every TCP connection to
//     the server goes through a proxy on loopback (internal/faultproxy),
//     and every interval the proxy resets all the connections open through
//     it: calls in flight, idle keep-alive connections and event streams
//     alike. New connections go through again at once. The URL
//     is unchanged (the HTTP clients dial the proxy whatever the address),
//     so TLS and Host headers still name the real server.
//
// Faults hit every mode, per-call included: per-call has nothing to heal
// (each call makes its own session), and its failed calls show what a
// fault costs without a pool. The faults stop before the last calls of
// each mode (chaosTail); "healed" means that every call started after the
// faults stopped succeeded.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/faultproxy"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Fault kinds, as printed and in the JSON.
const (
	faultKill  = "kill"  // SIGKILL one stdio server process
	faultBreak = "break" // reset every HTTP connection to the server
)

// chaos injects one kind of fault into a target's traffic.
type chaos struct {
	interval time.Duration
	kind     string
	procs    *procRegistry     // faultKill
	proxy    *faultproxy.Proxy // faultBreak
}

// enableChaos reroutes the target's traffic so that faults can be injected:
// stdio transports record their processes, HTTP traffic goes through a
// proxy. maxSessions sizes the pools' shared HTTP client. The target's close
// undoes it.
func (t *target) enableChaos(interval time.Duration, maxSessions int) (*chaos, error) {
	c := &chaos{interval: interval}
	if t.command != nil {
		c.kind = faultKill
		c.procs = &procRegistry{live: make(map[*trackedProc]struct{})}
		t.procs = c.procs
		// Config.Command starts processes we could not see; build the
		// transport ourselves, as per-call does.
		t.cfg.Command = nil
		t.cfg.NewTransport = func(context.Context) (mcp.Transport, error) { return t.transport(nil), nil }
		return c, nil
	}
	raw := t.cfg.URL
	if raw == "" {
		raw = t.cfg.SSEURL
	}
	upstream, err := hostPort(raw)
	if err != nil {
		return nil, err
	}
	proxy, err := faultproxy.New(upstream)
	if err != nil {
		return nil, fmt.Errorf("--chaos: starting the proxy: %w", err)
	}
	c.kind, c.proxy = faultBreak, proxy
	t.dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", proxy.Addr())
	}
	// The pools share one client that dials the proxy; sized as the pool
	// sizes its own (see mcpool.Config.HTTPClient).
	tr := t.httpTransport(maxSessions * (mcpool.DefaultMaxCallsPerSession + 1))
	t.cfg.HTTPClient = &http.Client{Transport: tr}
	t.cleanup = append(t.cleanup, tr.CloseIdleConnections, func() { _ = proxy.Close() })
	return c, nil
}

// hostPort returns the host:port that an HTTP URL's connections go to.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// describe says what the faults are, for the line above the chaos summary.
func (c *chaos) describe() string {
	if c.kind == faultKill {
		return fmt.Sprintf("every %v, SIGKILL one stdio server process", c.interval)
	}
	return fmt.Sprintf("every %v, reset every TCP connection to the server", c.interval)
}

// inject does one fault and reports whether it hit anything: a break
// always does, a kill only when a server process was up.
func (c *chaos) inject() bool {
	if c.kind == faultKill {
		return c.procs.killOne()
	}
	// Drop resets every connection and refuses new ones until Heal: a
	// moment's outage.
	c.proxy.Drop()
	c.proxy.Heal()
	return true
}

// chaosGate is how many calls must succeed between two faults: two rounds
// of the workers, so that faults can cost at most about a third of a
// mode's calls (a fault hits at most the calls in flight).
func chaosGate(concurrency int) int { return 2 * concurrency }

// chaosTail is how many calls at the end of each mode run without faults:
// a tenth of them, at least one round of the workers, at most half.
func chaosTail(calls, concurrency int) int {
	return max(1, min(calls/2, max(concurrency, calls/10)))
}

// chaosRun injects faults during one mode, from start until stop.
//
// Faults are paced by the interval and by progress: after a fault, the
// next one also waits until gate calls have succeeded. A fault hits at
// most the calls in flight, so the run serves calls between faults however
// slow the machine is; without the gate a loaded machine, whose calls take
// longer than the interval, would see every call hit and show nothing
// about healing.
type chaosRun struct {
	c       *chaos
	gate    int64
	ok      atomic.Int64  // calls that succeeded so far
	okSig   chan struct{} // a call succeeded (buffered, 1)
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	faults  int // faults that hit something; written by loop until done
	stopped time.Time
}

// start begins faults at c's interval; gate is the number of calls that
// must succeed between two faults.
func (c *chaos) start(gate int) *chaosRun {
	r := &chaosRun{c: c, gate: int64(gate), okSig: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// succeeded counts a call that succeeded. Safe on a nil *chaosRun.
func (r *chaosRun) succeeded() {
	if r == nil {
		return
	}
	r.ok.Add(1)
	select {
	case r.okSig <- struct{}{}:
	default:
	}
}

func (r *chaosRun) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.c.interval)
	defer tick.Stop()
	okAtFault := int64(-1) // no fault yet: the first needs no calls before it
	for {
		select {
		case <-r.quit:
			return
		case <-tick.C:
		}
		for okAtFault >= 0 && r.ok.Load()-okAtFault < r.gate {
			select {
			case <-r.quit:
				return
			case <-r.okSig:
			}
		}
		if r.c.inject() {
			r.faults++
			okAtFault = r.ok.Load()
		}
	}
}

// stop ends the faults and returns once none is under way. It may be
// called more than once.
func (r *chaosRun) stop() {
	r.once.Do(func() {
		close(r.quit)
		<-r.done
		r.stopped = time.Now()
	})
}

// chaosResult is what chaos did to one mode and how the mode fared.
type chaosResult struct {
	kind   string
	every  time.Duration
	faults int // kills or breaks done
	// Calls started after the faults stopped, and how many of them failed.
	after, afterErrors int
	firstAfterErr      error
	kinds              map[string]int // every failed call of the mode, by kind
	pool               *mcpool.Stats  // nil for per-call
}

// healed reports whether calls ran after the faults stopped and all
// succeeded.
func (c *chaosResult) healed() bool { return c.after > 0 && c.afterErrors == 0 }

// result sums up the mode once its calls are done; starts and errs are
// indexed by call.
func (r *chaosRun) result(starts []time.Time, errs []error) *chaosResult {
	r.stop()
	res := &chaosResult{kind: r.c.kind, every: r.c.interval, faults: r.faults, kinds: map[string]int{}}
	for i, err := range errs {
		if err != nil {
			res.kinds[errorKind(err)]++
		}
		if starts[i].IsZero() || starts[i].Before(r.stopped) {
			continue
		}
		res.after++
		if err != nil {
			if res.afterErrors == 0 {
				res.firstAfterErr = err
			}
			res.afterErrors++
		}
	}
	return res
}

// errorKind sorts a failed call into a few kinds, so that a run with
// hundreds of failures prints one short line.
func errorKind(err error) string {
	switch {
	case errors.Is(err, mcpool.ErrSessionLost):
		return "session lost"
	case errors.Is(err, mcpool.ErrServerUnavailable):
		return "server unavailable"
	case errors.Is(err, mcpool.ErrPoolExhausted):
		return "pool exhausted"
	case errors.Is(err, mcpool.ErrConnectFailed):
		return "connect failed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, mcp.ErrConnectionClosed):
		return "connection closed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection lost (EOF)"
	case errors.As(err, new(*exec.ExitError)):
		return "server exited" // per-call: killed between its call and its close
	case strings.Contains(err.Error(), "tool reported an error"):
		return "tool error"
	}
	return "other"
}

// kindsText is "3 session lost, 1 connection reset", most frequent first.
func kindsText(kinds map[string]int) string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if kinds[names[i]] != kinds[names[j]] {
			return kinds[names[i]] > kinds[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	return strings.Join(parts, ", ")
}

// counted is plural for nouns that do not just take an s.
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// chaosSummary is the chaos line of one mode, after "mode: ".
func (r *modeRun) chaosSummary() string {
	c := r.chaos
	var b strings.Builder
	b.WriteString(plural(c.faults, c.kind))
	if st := c.pool; st != nil {
		fmt.Fprintf(&b, ", %s died, %s, %s, %s",
			plural(int(st.Deaths), "session"), plural(int(st.Reconnects), "reconnect"),
			counted(int(st.Retries), "retry", "retries"), plural(int(st.LostCalls), "lost call"))
	}
	fmt.Fprintf(&b, "; %s", plural(r.errors, "error"))
	if r.errors > 0 {
		fmt.Fprintf(&b, " (%s)", kindsText(c.kinds))
	}
	switch {
	case c.healed():
		fmt.Fprintf(&b, "; healed: yes (the %d calls after the faults stopped succeeded)", c.after)
	case c.after == 0:
		b.WriteString("; healed: unknown (no call started after the faults stopped)")
	default:
		fmt.Fprintf(&b, "; healed: no (%d of the %d calls after the faults stopped failed)", c.afterErrors, c.after)
	}
	return b.String()
}

// jsonChaos is the "chaos" object of a bench --json run, present only
// under --chaos. Pool figures are absent for per-call.
type jsonChaos struct {
	Fault       string         `json:"fault"` // "kill" or "break"
	EveryMS     float64        `json:"every_ms"`
	Faults      int            `json:"faults"`
	Deaths      *uint64        `json:"deaths,omitempty"`
	Reconnects  *uint64        `json:"reconnects,omitempty"`
	Retries     *uint64        `json:"retries,omitempty"`
	LostCalls   *uint64        `json:"lost_calls,omitempty"`
	ErrorKinds  map[string]int `json:"error_kinds"`
	CallsAfter  int            `json:"calls_after"`
	ErrorsAfter int            `json:"errors_after"`
	Healed      bool           `json:"healed"`
}

func (c *chaosResult) json() *jsonChaos {
	j := &jsonChaos{
		Fault: c.kind, EveryMS: ms(c.every), Faults: c.faults, ErrorKinds: c.kinds,
		CallsAfter: c.after, ErrorsAfter: c.afterErrors, Healed: c.healed(),
	}
	if st := c.pool; st != nil {
		j.Deaths, j.Reconnects, j.Retries, j.LostCalls = &st.Deaths, &st.Reconnects, &st.Retries, &st.LostCalls
	}
	return j
}

// procRegistry knows the stdio server processes that bench started and
// has not closed.
type procRegistry struct {
	mu   sync.Mutex
	live map[*trackedProc]struct{}
}

type trackedProc struct {
	proc   *os.Process
	ready  atomic.Bool // the server has answered: its session is up
	killed bool        // guarded by procRegistry.mu
}

// killOne sends SIGKILL to one live process, chosen at random among those
// whose server has answered, and reports whether it did. A server still
// starting is spared: killing every replacement before it connects would
// only show the circuit breaker opening, not the pool healing.
func (r *procRegistry) killOne() bool {
	r.mu.Lock()
	var cands []*trackedProc
	for tp := range r.live {
		if !tp.killed && tp.ready.Load() {
			cands = append(cands, tp)
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	defer r.mu.Unlock()
	for _, tp := range cands {
		// os.Process signals through a pidfd where it can: never another
		// process that reused the pid.
		if tp.proc.Signal(syscall.SIGKILL) == nil {
			tp.killed = true
			return true
		}
	}
	return false
}

func (r *procRegistry) add(p *os.Process) *trackedProc {
	tp := &trackedProc{proc: p}
	r.mu.Lock()
	r.live[tp] = struct{}{}
	r.mu.Unlock()
	return tp
}

func (r *procRegistry) remove(tp *trackedProc) {
	r.mu.Lock()
	delete(r.live, tp)
	r.mu.Unlock()
}

// trackedTransport is an mcp.CommandTransport that records the process it
// starts until its connection is closed.
type trackedTransport struct {
	ct  *mcp.CommandTransport
	reg *procRegistry
}

// Connect starts the server and records its process as a target.
func (t *trackedTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.ct.Connect(ctx)
	if err != nil {
		return nil, err
	}
	tp := t.reg.add(t.ct.Command.Process)
	return &trackedConn{Connection: conn, proc: tp, forget: func() { t.reg.remove(tp) }}, nil
}

// trackedConn marks its process ready when the server first answers, and
// forgets it as soon as closing starts: a process on its way out is no
// target for a fault.
type trackedConn struct {
	mcp.Connection
	proc   *trackedProc
	once   sync.Once
	forget func()
}

// Read reads a message; the first one proves the server answered.
func (c *trackedConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if err == nil {
		c.proc.ready.Store(true)
	}
	return msg, err
}

// Close stops treating the process as a target, then closes.
func (c *trackedConn) Close() error {
	c.once.Do(c.forget)
	return c.Connection.Close()
}

// chaosOutcome reports the failed calls of a --chaos run on stderr, one
// line per mode (they were expected), and fails only if a mode did not
// heal: a call started after the faults stopped failed.
func chaosOutcome(runs []*modeRun, stderr io.Writer) error {
	for _, r := range runs {
		if r.errors > 0 {
			msg := strings.Join(strings.Fields(withoutPrefix(explainError(r.firstErr))), " ")
			fmt.Fprintf(stderr, "mcpool: bench: %s: %d of %d calls failed under --chaos (%s); first: %s\n",
				r.mode, r.errors, r.calls, kindsText(r.chaos.kinds), msg)
		}
	}
	for _, r := range runs {
		if c := r.chaos; c.afterErrors > 0 {
			return fmt.Errorf("%s: did not heal: %d of the %d calls started after the faults stopped failed; first: %w",
				r.mode, c.afterErrors, c.after, c.firstAfterErr)
		}
	}
	return nil
}
