package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The ways bench runs its workload, in the order it runs and prints them.
const (
	modePerCall   = "per-call"  // a new session for every call, as agents do today
	modeExclusive = "exclusive" // the pool, one call per session at a time
	modePooled    = "pooled"    // the pool, calls multiplexed on its sessions
)

var allModes = []string{modePerCall, modeExclusive, modePooled}

type benchFlags struct {
	target      targetFlags
	tool        string
	rawArgs     string
	calls       int
	concurrency int
	maxSessions int
	modes       []string
	json        bool
	timeout     time.Duration
	warmup      time.Duration // the untimed run of each pooled or exclusive mode
	chaos       time.Duration // 0: no faults
	matrix      bool
	rows        string          // --matrix: run only the rows whose label contains one of these (comma-separated)
	passes      int             // --matrix: how many times each mode runs per row
	chart       string          // file to draw the latency chart in; "" for none
	set         map[string]bool // the flags given on the command line
	label       string          // prefix of the progress line (the matrix row)
}

func (b *benchFlags) parse(args []string, stdout io.Writer) error {
	fs := newFlagSet("bench")
	b.target.register(fs)
	fs.StringVar(&b.tool, "tool", "echo", "tool to call")
	fs.StringVar(&b.rawArgs, "args", `{"message":"hello"}`, "the tool's arguments, a JSON object")
	fs.IntVar(&b.calls, "calls", 1000, "calls per mode")
	fs.IntVar(&b.concurrency, "concurrency", 8, "calls in flight at once")
	fs.IntVar(&b.maxSessions, "max-sessions", 4, "MaxSessions of the pools")
	modes := fs.String("modes", strings.Join(allModes, ","), "modes to run, comma-separated, from "+strings.Join(allModes, ", "))
	fs.BoolVar(&b.json, "json", false, `print the results as JSON instead of a table: {"runs":[...]}, or {"matrix":[...]} with --matrix`)
	fs.DurationVar(&b.timeout, "timeout", 30*time.Second, "bound on each call, and on warming each pool")
	fs.DurationVar(&b.warmup, "warmup", 0, "run the workload this long through each pool (exclusive and pooled) before the\n"+
		"clock starts, so that the figures are those of a warm pool: its per-session call\n"+
		"limit adapted to the server (see docs/library.md), the runtime warm. Default 0 (a new\n"+
		"pool is timed), 1s with --matrix")
	fs.DurationVar(&b.chaos, "chaos", 0, "inject a fault at this interval while each mode runs: SIGKILL one stdio\n"+
		"server process (--stdio), or reset every TCP connection to the server (HTTP).\n"+
		"After each fault the next also waits until twice --concurrency calls have\n"+
		"succeeded, so a slow machine gets fewer faults rather than nothing but faults.\n"+
		"The last tenth of each mode's calls (at least --concurrency of them) run\n"+
		"without faults, to show whether it healed. Calls that fail under the faults do not fail the command; calls that\n"+
		"fail after the faults stopped do")
	fs.BoolVar(&b.matrix, "matrix", false, "run the standard set of workloads (short calls at 1, 8, 32 and 128 callers; a\n"+
		"50ms tool at 64; stdio at 8 and 32, also against a server that handles one call\n"+
		"at a time per session) against the demo server, run as child processes of this\n"+
		"command, and print exclusive against pooled for each. --calls, if given, sets\n"+
		"every row's calls; --max-sessions, --timeout, --passes, --rows and --json apply.\n"+
		"About five minutes on a quiet 2-core machine")
	fs.IntVar(&b.passes, "passes", 2, "with --matrix, run each mode this many times per row, in the order exclusive,\n"+
		"pooled, pooled, exclusive (and again), and give each figure over all of them: the\n"+
		"machine's drift during a row falls on both modes alike")
	fs.StringVar(&b.rows, "rows", "", "with --matrix, run only the rows whose label (\"echo, stdio everything ×8\")\n"+
		"contains one of these comma-separated strings")
	fs.StringVar(&b.chart, "chart", "", "also draw each mode's latency percentiles (log scale) in this file:\n"+
		"SVG or PNG, by the name's extension")
	rest, err := parseFlags(fs, args, "bench [--url URL | --sse URL | --stdio CMD | --config FILE [--server NAME] | --matrix] [flags]", stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	b.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { b.set[f.Name] = true })
	if b.matrix {
		// (config and server are the flags that name a configured server.)
		for _, name := range []string{"url", "sse", "stdio", "config", "server", "tool", "args", "concurrency", "modes", "chaos", "chart"} {
			if b.set[name] {
				return usageErrorf("--matrix runs its own workloads: --%s does not apply", name)
			}
		}
	}
	if b.chart != "" {
		if err := checkChartName(b.chart); err != nil {
			return err
		}
	}
	for name, v := range map[string]int{"--calls": b.calls, "--concurrency": b.concurrency, "--max-sessions": b.maxSessions, "--passes": b.passes} {
		if v < 1 {
			return usageErrorf("%s must be at least 1", name)
		}
	}
	if b.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	if b.chaos < 0 {
		return usageErrorf("--chaos must not be negative")
	}
	if b.warmup < 0 {
		return usageErrorf("--warmup must not be negative")
	}
	if b.matrix && !b.set["warmup"] {
		b.warmup = time.Second
	}
	for m := range strings.SplitSeq(*modes, ",") {
		m = strings.TrimSpace(m)
		if !slices.Contains(allModes, m) {
			return usageErrorf("--modes: unknown mode %q (modes: %s)", m, strings.Join(allModes, ", "))
		}
		if !slices.Contains(b.modes, m) {
			b.modes = append(b.modes, m)
		}
	}
	// Run in the canonical order whatever the flag's order: the ratio
	// column compares with the first row.
	slices.SortFunc(b.modes, func(x, y string) int { return slices.Index(allModes, x) - slices.Index(allModes, y) })
	return nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var b benchFlags
	if err := b.parse(args, stdout); err != nil {
		return err
	}
	if b.matrix {
		return runMatrix(ctx, &b, stdout, stderr)
	}
	arguments, perr := parseArguments(b.rawArgs)
	if perr != nil {
		return usageErrorf("--args: %v", perr)
	}
	params := func() *mcp.CallToolParams {
		// A fresh value per call: the SDK writes the request's _meta into
		// the params it is given (protocol 2026-07-28), so calls in flight
		// must not share them.
		return &mcp.CallToolParams{Name: b.tool, Arguments: arguments}
	}
	if b.target.group.used() {
		return groupBench(ctx, &b, params, stdout, stderr)
	}

	tgt, err := b.target.open(stderr)
	if err != nil {
		return err
	}
	defer func() { shutdown(err != nil || ctx.Err() != nil, tgt) }()
	var ch *chaos
	if b.chaos > 0 {
		if ch, err = tgt.enableChaos(b.chaos, b.maxSessions); err != nil {
			return err
		}
	}
	if err := preflight(ctx, tgt, &b.target, b.tool, b.timeout, stderr); err != nil {
		return err
	}
	var runs []*modeRun
	for _, mode := range b.modes {
		var r *modeRun
		if mode == modePerCall {
			r, err = benchPerCall(ctx, tgt, &b, params, ch, stderr)
		} else {
			r, err = benchPool(ctx, tgt, &b, mode, params, ch, stderr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		runs = append(runs, r)
	}
	if b.json {
		err = writeJSON(stdout, runs)
	} else {
		err = writeTable(stdout, runs, ch)
	}
	if err != nil {
		return err
	}
	if b.chart != "" {
		if err := writeChart(b.chart, b.describe(tgt), runs); err != nil {
			return err
		}
	}
	if ch != nil {
		return chaosOutcome(runs, stderr)
	}
	for _, r := range runs {
		if r.errors > 0 {
			return fmt.Errorf("%s: %d of %d calls failed; first error: %w", r.mode, r.errors, r.calls, r.firstErr)
		}
	}
	return nil
}

// preflight connects once and checks that the server has the tool, so that
// an unreachable server or a misspelt tool costs one clear error, not a run
// of failed calls.
func preflight(ctx context.Context, tgt *target, f *targetFlags, tool string, timeout time.Duration, stderr io.Writer) (err error) {
	p, err := mcpool.New(tgt.poolConfig(1, 1, 0))
	if err != nil {
		return err
	}
	defer func(ctx context.Context) { shutdown(err != nil || ctx.Err() != nil, nil, p) }(ctx) // the command's ctx, not the timeout's below
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := startPool(ctx, p, tgt, f, stderr); err != nil { // connectwait.go
		return withTimeout(ctx, timeout, err)
	}
	tools, err := p.ListTools(ctx)
	if err != nil {
		return fmt.Errorf("listing tools: %w", err)
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		if t.Name == tool {
			return nil
		}
		names[i] = t.Name
	}
	return fmt.Errorf("the server has no tool %q (it has: %s)", tool, strings.Join(names, ", "))
}

// benchPerCall opens, uses and closes a session for every call: connect
// (protocol negotiated, as a fresh client does), list tools, call, close.
func benchPerCall(ctx context.Context, tgt *target, b *benchFlags, params func() *mcp.CallToolParams, ch *chaos, stderr io.Writer) (*modeRun, error) {
	// Each call in flight holds its own connections; net/http's default of 2
	// idle ones per host would make per-call pay for TCP setup as well.
	hc := &http.Client{Transport: tgt.httpTransport(b.concurrency)}
	defer hc.CloseIdleConnections()
	impl := &mcp.Implementation{Name: mcpool.DefaultClientName, Version: mcpool.Version}
	opts := tgt.clientOptions()

	var warns closeWarnings
	r, err := drive(ctx, modePerCall, b, ch, stderr, func(ctx context.Context) error {
		cs, err := mcp.NewClient(impl, opts).Connect(ctx, tgt.transport(hc), nil)
		if err != nil {
			return err
		}
		err = listAndCall(ctx, cs, params)
		// The call's outcome is decided: a server that is slow to exit
		// afterwards (still running after the terminate grace, then
		// stopped by a signal) costs this worker time, which calls/s
		// shows, but did not fail the call.
		if cerr := cs.Close(); err == nil && cerr != nil && !errors.Is(cerr, mcp.ErrConnectionClosed) {
			warns.add(cerr)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	r.closeWarnings, r.firstCloseWarning = warns.result()
	r.note = fmt.Sprintf("%s created (one per call)", plural(r.calls, "session"))
	if r.closeWarnings > 0 {
		r.note += fmt.Sprintf("; %d closed with a warning after a successful call (first: %s)",
			r.closeWarnings, oneLine(r.firstCloseWarning))
	}
	return r, nil
}

// closeWarnings counts sessions whose close failed after their call had
// succeeded, and keeps the first such error.
type closeWarnings struct {
	mu    sync.Mutex
	n     int
	first error
}

func (w *closeWarnings) add(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.first = err
	}
	w.n++
}

func (w *closeWarnings) result() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.first
}

// oneLine folds an error's message onto one line.
func oneLine(err error) string { return strings.Join(strings.Fields(withoutPrefix(err)), " ") }

func listAndCall(ctx context.Context, cs *mcp.ClientSession, params func() *mcp.CallToolParams) error {
	for _, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("listing tools: %w", err)
		}
	}
	res, err := cs.CallTool(ctx, params())
	return callError(res, err)
}

// benchPool runs the workload through a pool, warmed before the clock
// starts: it connects the sessions the workload needs and fills the tool
// catalog. Each call then lists tools (from the catalog) and calls the tool,
// the pooled version of what per-call does.
func benchPool(ctx context.Context, tgt *target, b *benchFlags, mode string, params func() *mcp.CallToolParams, ch *chaos, stderr io.Writer) (_ *modeRun, err error) {
	perSession := mcpool.DefaultMaxCallsPerSession
	if mode == modeExclusive {
		perSession = 1
	}
	need := min(b.maxSessions, (b.concurrency+perSession-1)/perSession)
	p, err := mcpool.New(tgt.poolConfig(need, b.maxSessions, perSession))
	if err != nil {
		return nil, err
	}
	defer func() { shutdown(err != nil || ctx.Err() != nil, nil, p) }()
	wctx, cancel := context.WithTimeout(ctx, b.timeout)
	err = startPool(wctx, p, tgt, &b.target, stderr) // connectwait.go
	if err == nil {
		_, err = p.ListTools(wctx)
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("warming the pool: %w", err)
	}
	call := func(ctx context.Context) error {
		if _, err := p.ListTools(ctx); err != nil {
			return fmt.Errorf("listing tools: %w", err)
		}
		return callError(p.CallTool(ctx, params()))
	}
	if err := warmUp(ctx, b, call); err != nil {
		return nil, err
	}

	r, err := drive(ctx, mode, b, ch, stderr, call)
	if err != nil {
		return nil, err
	}
	st := p.Stats()
	r.sessions = int(st.SessionsCreated)
	if r.chaos != nil {
		r.chaos.pool = &st
	}
	r.note = fmt.Sprintf("%s created, %d acquires, acquire wait p99 %s",
		plural(int(st.SessionsCreated), "session"), st.Acquires, formatMS(st.AcquireWaitP99))
	return r, nil
}

// warmUp runs call with b.concurrency workers for b.warmup, untimed. A
// failed call is not counted here: the timed run that follows counts its
// own. Calls are not cut short when the time is up (a call cancelled in
// flight would make the pool suspect its session): each worker just makes
// no more.
func warmUp(ctx context.Context, b *benchFlags, call func(context.Context) error) error {
	if b.warmup <= 0 {
		return nil
	}
	end := time.Now().Add(b.warmup)
	var wg sync.WaitGroup
	for range b.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				cctx, cancel := context.WithTimeout(ctx, b.timeout)
				_ = call(cctx)
				cancel()
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// callError turns a tool's own failure (isError) into an error: bench
// counts it as a failed call.
func callError(res *mcp.CallToolResult, err error) error {
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool reported an error: %s", contentText(res))
	}
	return nil
}

func contentText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// modeRun is the outcome of one mode.
type modeRun struct {
	mode     string
	calls    int
	errors   int
	firstErr error
	ok       []time.Duration // latencies of the calls that succeeded, sorted
	wall     time.Duration
	cpu      time.Duration // the process's CPU time (user+sys) during the run
	sessions int           // sessions the pool created (pool modes)
	note     string        // the brief statistics line printed under the table
	// Per-call only: sessions whose close failed after a successful call
	// (a stdio server slow to exit, stopped by SIGTERM or SIGKILL).
	closeWarnings     int
	firstCloseWarning error
	chaos             *chaosResult // under --chaos only
	// The matrix's cold runs only (matrix.go): when the per-session limit
	// settled and at what value, and when the most sessions the pool had
	// were connected, and how many.
	settle, sessionsAt  time.Duration
	limit, peakSessions int
}

// drive makes b.calls calls with b.concurrency workers and times each. The
// workers take call numbers from a shared counter, so that a slow call
// never leaves a worker idle while calls remain. With ch set, faults are
// injected from the first call until the last chaosTail calls.
func drive(ctx context.Context, mode string, b *benchFlags, ch *chaos, stderr io.Writer, call func(context.Context) error) (*modeRun, error) {
	lat := make([]time.Duration, b.calls)
	errs := make([]error, b.calls)
	starts := make([]time.Time, b.calls)
	var next atomic.Int64
	prog := startProgress(stderr, b.label+mode, b.calls)
	var wg sync.WaitGroup
	quietFrom := b.calls
	var cr *chaosRun
	if ch != nil {
		quietFrom -= chaosTail(b.calls, b.concurrency)
		cr = ch.start(chaosGate(b.concurrency))
		defer cr.stop()
	}
	cpu0 := processCPU()
	start := time.Now()
	for range min(b.concurrency, b.calls) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.calls || ctx.Err() != nil {
					return
				}
				if i == quietFrom {
					cr.stop()
				}
				cctx, cancel := context.WithTimeout(ctx, b.timeout)
				t0 := time.Now()
				starts[i] = t0
				errs[i] = call(cctx)
				lat[i] = time.Since(t0)
				if errs[i] == nil {
					cr.succeeded()
				}
				cancel()
				prog.add()
			}
		})
	}
	if !waitOrAbandon(ctx, &wg) {
		// Workers still closing per-call sessions or waiting on a server
		// that ignores cancellation are left to the process's exit: they
		// touch nothing that is read from here on.
		prog.stop()
		return nil, fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	prog.stop()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stopped: %w", context.Cause(ctx))
	}

	r := &modeRun{mode: mode, calls: b.calls, wall: wall, cpu: cpu}
	if cr != nil {
		r.chaos = cr.result(starts, errs)
	}
	for i, err := range errs {
		if err != nil {
			if r.errors == 0 {
				r.firstErr = err
			}
			r.errors++
			continue
		}
		r.ok = append(r.ok, lat[i])
	}
	slices.Sort(r.ok)
	return r, nil
}

// waitOrAbandon waits for wg, or, once ctx has ended, for closeGrace more
// at most. It reports whether wg finished.
func waitOrAbandon(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// describe says what was measured, for the chart's subtitle: the tool,
// callers, pool size and server.
func (b *benchFlags) describe(tgt *target) string {
	server := "the embedded demo server (HTTP)"
	switch {
	case b.target.url != "":
		server = redactedURL(b.target.url)
	case b.target.sse != "":
		server = redactedURL(b.target.sse) + " (SSE)"
	case b.target.stdio != "":
		server = "stdio: " + filepath.Base(tgt.command[0])
	}
	return fmt.Sprintf("tool %s, %d calls per mode, %d callers, MaxSessions %d, %s", b.tool, b.calls, b.concurrency, b.maxSessions, server)
}

// redactedURL drops a URL's credentials and query, which may hold keys.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the server"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
