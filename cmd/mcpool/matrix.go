package main

// bench --matrix: the standard set of workloads, each run exclusive and
// pooled, in one table. The servers are this command's own demo server,
// started as child processes (demo-server --http for the HTTP rows,
// demo-server --stdio for the stdio rows) so that the CPU per call measured
// in this process is the client's alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// matrixRow is one workload of the matrix.
type matrixRow struct {
	transport   string // "http" or "stdio"
	serial      bool   // the server handles one call at a time per session
	tool, args  string
	concurrency int
	calls       int    // the default; --calls overrides it
	server      string // "" for the demo server, or serverEverything or serverOneCore
}

// The matrix's servers other than the plain demo server.
const (
	// serverEverything is the npm reference server over stdio: one Node
	// process (one event loop) per session.
	serverEverything = "everything"
	// serverOneCore is the demo server on one core with a fixed CPU cost
	// per call: a model of a Python (asyncio) server that handles calls
	// concurrently but computes on one core.
	serverOneCore = "one-core"
)

// oneCoreCPU is the one-core model server's CPU time per call.
const oneCoreCPU = 1500 * time.Microsecond

// name is the row's label in the table.
func (r matrixRow) name() string {
	n := r.tool
	if r.tool == "sleep" {
		var a struct{ MS int }
		_ = json.Unmarshal([]byte(r.args), &a)
		n = fmt.Sprintf("%dms tool", a.MS)
	}
	n += ", " + r.transport
	switch {
	case r.serial:
		n += " serial"
	case r.server == serverEverything:
		n += " everything"
	case r.server == serverOneCore:
		n += fmt.Sprintf(" 1 core %gms", float64(oneCoreCPU)/float64(time.Millisecond))
	}
	return n
}

// selected reports whether --rows (comma-separated parts of labels)
// selects the row; "" selects every row.
func (r matrixRow) selected(rows string) bool {
	if rows == "" {
		return true
	}
	label := fmt.Sprintf("%s ×%d", r.name(), r.concurrency)
	for part := range strings.SplitSeq(rows, ",") {
		if part = strings.TrimSpace(part); part != "" && strings.Contains(label, part) {
			return true
		}
	}
	return false
}

const echoArgs = `{"message":"hello"}`

// matrixRows are the standard workloads. Calls per row keep each run to a
// second or two on 2 cores; the serial rows call a 1ms tool, so that a
// server handling one call at a time costs what it costs a real one.
var matrixRows = []matrixRow{
	{"http", false, "echo", echoArgs, 1, 1500, ""},
	{"http", false, "echo", echoArgs, 8, 3000, ""},
	{"http", false, "echo", echoArgs, 32, 3000, ""},
	{"http", false, "echo", echoArgs, 128, 3000, ""},
	{"http", false, "sleep", `{"ms":50}`, 64, 640, ""},
	{"stdio", false, "echo", echoArgs, 8, 3000, ""},
	{"stdio", false, "echo", echoArgs, 32, 3000, ""},
	{"stdio", true, "sleep", `{"ms":1}`, 8, 2000, ""},
	{"stdio", true, "sleep", `{"ms":1}`, 32, 2000, ""},
	{"stdio", false, "echo", echoArgs, 8, 3000, serverEverything},
	{"stdio", false, "echo", echoArgs, 32, 3000, serverEverything},
	{"stdio", false, "echo", echoArgs, 8, 1500, serverOneCore},
	{"stdio", false, "echo", echoArgs, 32, 1500, serverOneCore},
}

// everythingScript is server-everything's entry point under testdata/npm
// (npm ci --prefix testdata/npm).
const everythingScript = "testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

// findEverything looks for everythingScript in the working directory and
// its parents; "" when it is not installed.
func findEverything() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, filepath.FromSlash(everythingScript))
		if _, err := os.Stat(p); err == nil {
			return p
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// matrixPhase is exclusive against pooled in one phase of a row.
type matrixPhase struct {
	exclusive, pool *modeRun
}

// matrixResult is one row's outcome: each mode's pool is timed from a cold
// start (one session, connected before the clock starts), then warmed up
// and timed again.
type matrixResult struct {
	row        matrixRow
	cold, warm matrixPhase
	skipped    string // why the row did not run; "" when it did
}

func runMatrix(ctx context.Context, b *benchFlags, stdout, stderr io.Writer) error {
	if !slices.ContainsFunc(matrixRows, func(r matrixRow) bool { return r.selected(b.rows) }) {
		var labels []string
		for _, r := range matrixRows {
			labels = append(labels, fmt.Sprintf("%s ×%d", r.name(), r.concurrency))
		}
		return usageErrorf("--rows %q matches no row; the rows: %s", b.rows, strings.Join(labels, "; "))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--matrix: finding this command's executable: %w", err)
	}
	url, stopHTTP, err := startDemoProcess(ctx, exe)
	if err != nil {
		return err
	}
	defer stopHTTP()
	everything := findEverything()
	var results []matrixResult
	for _, row := range matrixRows {
		if !row.selected(b.rows) {
			continue
		}
		rb := *b
		rb.tool, rb.concurrency = row.tool, row.concurrency
		if !b.set["calls"] {
			rb.calls = row.calls
		}
		rb.label = row.name() + fmt.Sprintf(" ×%d ", row.concurrency)
		tf := targetFlags{connectTimeout: b.target.connectTimeout, verbose: b.target.verbose}
		switch {
		case row.transport == "http":
			tf.url = url
		case row.server == serverEverything:
			if everything == "" {
				res := matrixResult{row: row, skipped: "server-everything is not installed (npm ci --prefix testdata/npm)"}
				fmt.Fprintf(stderr, "mcpool: bench: %s ×%d: skipped: %s\n", row.name(), row.concurrency, res.skipped)
				results = append(results, res)
				continue
			}
			tf.stdio = "node " + shellQuote(everything) + " stdio"
		default:
			tf.stdio = shellQuote(exe) + " demo-server --stdio"
			if row.serial {
				tf.stdio += " --serial"
			}
			if row.server == serverOneCore {
				tf.stdio += " --gomaxprocs 1 --cpu-per-call " + oneCoreCPU.String()
			}
		}
		rb.target = tf
		res, err := matrixOne(ctx, &rb, row, stderr)
		if err != nil {
			return fmt.Errorf("%s at %d callers: %w", row.name(), row.concurrency, err)
		}
		results = append(results, res)
	}
	if b.json {
		if err := writeMatrixJSON(stdout, results); err != nil {
			return err
		}
	} else if err := writeMatrixTable(stdout, results, b.maxSessions); err != nil {
		return err
	}
	for _, r := range results {
		for _, m := range []*modeRun{r.cold.exclusive, r.cold.pool, r.warm.exclusive, r.warm.pool} {
			if m != nil && m.errors > 0 {
				return fmt.Errorf("%s at %d callers: %s: %d of %d calls failed; first error: %w",
					r.row.name(), r.row.concurrency, m.mode, m.errors, m.calls, m.firstErr)
			}
		}
	}
	return nil
}

// matrixOne runs one row: each mode b.passes times, cold then warm, in
// the order exclusive, pooled, pooled, exclusive (and again from the
// start), so that a drift of the machine during the row (a busy minute,
// a CPU's clock) falls on both modes alike; each figure is over all of a
// mode's runs.
func matrixOne(ctx context.Context, b *benchFlags, row matrixRow, stderr io.Writer) (res matrixResult, err error) {
	res.row = row
	arguments, err := parseArguments(row.args)
	if err != nil {
		return res, err
	}
	params := func() *mcp.CallToolParams { return &mcp.CallToolParams{Name: b.tool, Arguments: arguments} }
	tgt, err := b.target.open(stderr)
	if err != nil {
		return res, err
	}
	defer func() { shutdown(err != nil || ctx.Err() != nil, tgt) }()
	label := b.label
	defer func() { b.label = label }()
	for i := range b.passes {
		order := []string{modeExclusive, modePooled}
		if i%2 == 1 {
			order = []string{modePooled, modeExclusive}
		}
		if b.passes > 1 {
			b.label = fmt.Sprintf("%s(pass %d) ", label, i+1)
		}
		for _, mode := range order {
			cold, warm, err := matrixMode(ctx, tgt, b, mode, params, stderr)
			if err != nil {
				return res, fmt.Errorf("%s: %w", mode, err)
			}
			if mode == modeExclusive {
				res.cold.exclusive, res.warm.exclusive = mergeRuns(res.cold.exclusive, cold), mergeRuns(res.warm.exclusive, warm)
			} else {
				res.cold.pool, res.warm.pool = mergeRuns(res.cold.pool, cold), mergeRuns(res.warm.pool, warm)
			}
		}
	}
	return res, nil
}

// mergeRuns adds run r to a mode's figures so far (nil for none): calls,
// time, CPU and latencies summed; for the limit's settling and the
// sessions' connecting, the slower of the runs.
func mergeRuns(all, r *modeRun) *modeRun {
	if all == nil {
		return r
	}
	m := *all
	m.calls += r.calls
	if m.errors == 0 {
		m.firstErr = r.firstErr
	}
	m.errors += r.errors
	m.ok = append(slices.Clip(m.ok), r.ok...)
	slices.Sort(m.ok)
	m.wall += r.wall
	m.cpu += r.cpu
	m.sessions = max(m.sessions, r.sessions)
	if m.settle >= 0 && (r.settle < 0 || r.settle > m.settle) {
		m.settle, m.limit = r.settle, r.limit
	}
	if r.sessionsAt > m.sessionsAt {
		m.sessionsAt = r.sessionsAt
	}
	m.peakSessions = max(m.peakSessions, r.peakSessions)
	return &m
}

// matrixMode times one mode's pool twice: cold, from a pool that has
// connected one session (as Start does by default) and fetched the tool
// catalog, so that it must connect the sessions the callers need while
// they call; then warm, after b.warmup more of the workload. The pool is
// sampled throughout (see poolTrace) for the limit's settling time and
// the time the sessions took to connect.
func matrixMode(ctx context.Context, tgt *target, b *benchFlags, mode string, params func() *mcp.CallToolParams, stderr io.Writer) (cold, warm *modeRun, err error) {
	perSession := mcpool.DefaultMaxCallsPerSession
	if mode == modeExclusive {
		perSession = 1
	}
	p, err := mcpool.New(tgt.poolConfig(1, b.maxSessions, perSession))
	if err != nil {
		return nil, nil, err
	}
	defer func() { shutdown(err != nil || ctx.Err() != nil, nil, p) }()
	wctx, cancel := context.WithTimeout(ctx, b.timeout)
	err = startPool(wctx, p, tgt, &b.target, stderr) // connectwait.go
	if err == nil {
		_, err = p.ListTools(wctx)
	}
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the pool: %w", err)
	}
	call := func(ctx context.Context) error {
		if _, err := p.ListTools(ctx); err != nil {
			return fmt.Errorf("listing tools: %w", err)
		}
		return callError(p.CallTool(ctx, params()))
	}
	tr := startPoolTrace(p)
	defer tr.stop()
	label := b.label
	cb := *b
	cb.label = label + "cold "
	if cold, err = drive(ctx, mode, &cb, nil, stderr, call); err != nil {
		return nil, nil, err
	}
	coldEnd := time.Since(tr.start)
	cold.sessions = int(p.Stats().SessionsCreated)
	if err := warmUp(ctx, b, call); err != nil {
		return nil, nil, err
	}
	warmStart := time.Since(tr.start)
	cb.label = label + "warm "
	if warm, err = drive(ctx, mode, &cb, nil, stderr, call); err != nil {
		return nil, nil, err
	}
	samples := tr.stop()
	warm.sessions = int(p.Stats().SessionsCreated)
	cold.settle, cold.limit = settling(samples, warmStart)
	cold.sessionsAt, cold.peakSessions = sessionsReady(samples, coldEnd)
	if dir := os.Getenv("MCPOOL_BENCH_TRACE"); dir != "" {
		writeTrace(filepath.Join(dir, strings.NewReplacer(" ", "_", ",", "", "×", "x", "(", "", ")", "").Replace(label+mode)+".csv"), samples)
	}
	return cold, warm, nil
}

// traceSample is the pool's state at one moment, since the cold run began.
type traceSample struct {
	at                          time.Duration
	limit, sessions, connecting int
	inFlight, waiters           int
}

// poolTrace samples a pool's Stats every traceEvery.
type poolTrace struct {
	start   time.Time
	done    chan struct{}
	stopped chan []traceSample
}

const traceEvery = 5 * time.Millisecond

func startPoolTrace(p *mcpool.Pool) *poolTrace {
	t := &poolTrace{start: time.Now(), done: make(chan struct{}), stopped: make(chan []traceSample, 1)}
	go func() {
		var out []traceSample
		tick := time.NewTicker(traceEvery)
		defer tick.Stop()
		for {
			st := p.Stats()
			out = append(out, traceSample{at: time.Since(t.start), limit: st.CallsPerSessionLimit, sessions: st.Sessions,
				connecting: st.Connecting, inFlight: st.CallsInFlight, waiters: st.Waiters})
			select {
			case <-t.done:
				t.stopped <- out
				return
			case <-tick.C:
			}
		}
	}()
	return t
}

// stop ends the sampling and returns the samples; later calls return nil.
func (t *poolTrace) stop() []traceSample {
	select {
	case <-t.done:
		return nil
	default:
	}
	close(t.done)
	return <-t.stopped
}

// probeSpan is how long the limit may leave its settled value without
// unsettling it: a probe (one round of another limit, undone) is shorter.
const probeSpan = 250 * time.Millisecond

// settling returns when the per-session limit settled, from the start of
// the cold run, and the value it settled at: the value it held most of the
// warm run (from warmFrom on). It settled at the end of the last stretch
// away from that value, the first stretch counting however short and any
// later one only if longer than probeSpan (a probe); -1 when it never
// came back (a stretch at the end of the run shorter than probeSpan is a
// probe under way).
func settling(samples []traceSample, warmFrom time.Duration) (time.Duration, int) {
	held := map[int]time.Duration{}
	for i := 1; i < len(samples); i++ {
		if samples[i-1].at >= warmFrom {
			held[samples[i-1].limit] += samples[i].at - samples[i-1].at
		}
	}
	final, most := 0, time.Duration(-1)
	for v, d := range held {
		if d > most || d == most && v < final {
			final, most = v, d
		}
	}
	if len(samples) == 0 {
		return -1, 0
	}
	if most < 0 { // a warm run too short to sample: its last value
		final = samples[len(samples)-1].limit
	}
	settled := time.Duration(0)
	away, first := false, true
	var from time.Duration
	for _, s := range samples {
		if s.limit != final {
			if !away {
				away, from = true, s.at
			}
			continue
		}
		if away && (first || s.at-from > probeSpan) {
			settled = s.at
		}
		away, first = false, false
	}
	if away && (first || samples[len(samples)-1].at-from > probeSpan) {
		return -1, final // (a shorter stretch at the end is a probe the run ended in)
	}
	return settled, final
}

// sessionsReady returns when the pool first had the most sessions it had
// in the cold run (which ended at coldEnd), and that number.
func sessionsReady(samples []traceSample, coldEnd time.Duration) (time.Duration, int) {
	peak, at := 0, time.Duration(0)
	for _, s := range samples {
		if s.at > coldEnd {
			break
		}
		if s.sessions > peak {
			peak, at = s.sessions, s.at
		}
	}
	return at, peak
}

// writeTrace writes samples as CSV for a closer look (MCPOOL_BENCH_TRACE).
func writeTrace(path string, samples []traceSample) {
	var sb strings.Builder
	sb.WriteString("ms,limit,sessions,connecting,in_flight,waiters\n")
	for _, s := range samples {
		fmt.Fprintf(&sb, "%.1f,%d,%d,%d,%d,%d\n", float64(s.at)/float64(time.Millisecond), s.limit, s.sessions, s.connecting, s.inFlight, s.waiters)
	}
	_ = os.WriteFile(path, []byte(sb.String()), 0o644)
}

// startDemoProcess runs "exe demo-server --http 127.0.0.1:0" and returns
// its URL, read from the line it prints once listening, and a func that
// stops it (SIGTERM, then SIGKILL after shutdownTimeout, or closeGrace once
// ctx has ended) and reaps it. Where the system allows, the server also
// ends when this process is killed outright (parentdeath_linux.go).
func startDemoProcess(ctx context.Context, exe string) (url string, stop func(), err error) {
	cmd := exec.Command(exe, "demo-server", "--http", "127.0.0.1:0")
	endWithParent(cmd)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("--matrix: starting the demo server: %w", err)
	}
	exited := make(chan struct{})
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		// It cancels its calls and exits at once; should it not, it
		// must not hold the command, least of all a stopped one.
		limit := shutdownTimeout
		if ctx.Err() != nil {
			limit = closeGrace
		}
		select {
		case <-exited:
		case <-time.After(limit):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
		_ = cmd.Wait()
		close(exited)
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		stop()
		return "", nil, context.Cause(ctx)
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("--matrix: the demo server did not start within 30s")
	}
	url, ok := strings.CutPrefix(line, "serving MCP on ")
	if !ok {
		stop()
		return "", nil, fmt.Errorf("--matrix: the demo server said %q, not where it serves", line)
	}
	return url, stop, nil
}

// shellQuote quotes s for splitWords: one word, taken literally.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func ratio(x, y float64) float64 {
	if y == 0 {
		return math.NaN()
	}
	return x / y
}

func writeMatrixTable(w io.Writer, results []matrixResult, maxSessions int) error {
	const row = "%-24s %7v %-4v | %9v %9v %8v | %10v %9v %8v | %9v %9v | %8v %7v | %v\n"
	fmt.Fprintf(w, "exclusive: one call per session at a time; pooled: calls multiplexed; MaxSessions %d\n", maxSessions)
	fmt.Fprintf(w, "cold: a new pool with one session connected; warm: the same pool, after the warm-up\n\n")
	fmt.Fprintf(w, row, "workload", "callers", "run",
		"excl. c/s", "p99", "cpu/call",
		"pooled c/s", "p99", "cpu/call",
		"c/s ratio", "p99 ratio", "settled", "at", "sessions")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(w, "%-24s %7v      | skipped: %s\n", r.row.name(), r.row.concurrency, r.skipped)
			continue
		}
		for i, ph := range []matrixPhase{r.cold, r.warm} {
			e, p := ph.exclusive, ph.pool
			run, settled, at, sessions := "cold", formatSettle(r.cold.pool.settle), fmt.Sprint(r.cold.pool.limit),
				fmt.Sprintf("%d/%d in %s", e.peakSessions, p.peakSessions, formatSettle(p.sessionsAt))
			if i == 1 {
				run, settled, at, sessions = "warm", "", "", fmt.Sprintf("%d/%d created", e.sessions, p.sessions)
			}
			fmt.Fprintf(w, row, r.row.name(), r.row.concurrency, run,
				fmt.Sprintf("%.0f", e.callsPerSecond()), formatMS(percentile(e.ok, 0.99)), formatUS(e.cpuPerCall()),
				fmt.Sprintf("%.0f", p.callsPerSecond()), formatMS(percentile(p.ok, 0.99)), formatUS(p.cpuPerCall()),
				fmt.Sprintf("%.2fx", ph.callsRatio()), fmt.Sprintf("%.2fx", ph.p99Ratio()), settled, at, sessions)
		}
	}
	_, err := fmt.Fprintln(w, "\nratios are pooled / exclusive, each mode run --passes times per row in the order exclusive,\n"+
		"pooled, pooled, exclusive, each figure over all its runs; cpu/call is this process's user+sys\n"+
		"CPU per call; settled: when the pooled pool's per-session limit settled, from the start of\n"+
		"the cold run (probes shorter than 250ms aside; the slowest pass), and at what value; sessions\n"+
		"(cold): the most each pool had, exclusive/pooled, and how long after the start they were all\n"+
		"connected (the slowest pass)")
	return err
}

func formatSettle(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func (ph matrixPhase) callsRatio() float64 {
	return ratio(ph.pool.callsPerSecond(), ph.exclusive.callsPerSecond())
}

func (ph matrixPhase) p99Ratio() float64 {
	return ratio(float64(percentile(ph.pool.ok, 0.99)), float64(percentile(ph.exclusive.ok, 0.99)))
}

// jsonMatrixPhase is exclusive against pooled in one run of a row.
type jsonMatrixPhase struct {
	Exclusive jsonRun `json:"exclusive"`
	Pooled    jsonRun `json:"pooled"`
	// Pooled over exclusive; null when exclusive measured nothing.
	CallsPerSRatio *float64 `json:"calls_per_s_ratio"`
	P99Ratio       *float64 `json:"p99_ratio"`
}

// jsonMatrixRow is one element of bench --matrix --json's "matrix". The
// figures at the top level are the warm run's; cold has the cold run's.
type jsonMatrixRow struct {
	Workload    string `json:"workload"`
	Transport   string `json:"transport"`
	Serial      bool   `json:"serial"`
	Server      string `json:"server"` // "demo", "everything" or "one-core"
	Tool        string `json:"tool"`
	Concurrency int    `json:"concurrency"`
	// Skipped says why the row did not run (its figures are then zero).
	Skipped string `json:"skipped,omitempty"`
	jsonMatrixPhase
	Cold jsonMatrixPhase `json:"cold"`
	// LimitSettledMS is when the pooled pool's per-session limit settled,
	// in milliseconds from the start of the cold run; -1 when it did not.
	LimitSettledMS float64 `json:"limit_settled_ms"`
	// Limit is the value it settled at.
	Limit int `json:"limit"`
	// SessionsConnectedMS is when each cold pool had connected the most
	// sessions it had in the cold run, in milliseconds from its start.
	SessionsConnectedMS struct {
		Exclusive float64 `json:"exclusive"`
		Pooled    float64 `json:"pooled"`
	} `json:"sessions_connected_ms"`
}

func writeMatrixJSON(w io.Writer, results []matrixResult) error {
	out := struct {
		Matrix []jsonMatrixRow `json:"matrix"`
	}{Matrix: make([]jsonMatrixRow, len(results))}
	opt := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		x = math.Round(x*1000) / 1000
		return &x
	}
	phase := func(ph matrixPhase) jsonMatrixPhase {
		return jsonMatrixPhase{Exclusive: ph.exclusive.json(), Pooled: ph.pool.json(),
			CallsPerSRatio: opt(ph.callsRatio()), P99Ratio: opt(ph.p99Ratio())}
	}
	msOf := func(d time.Duration) float64 {
		if d < 0 {
			return -1
		}
		return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
	}
	for i, r := range results {
		server := r.row.server
		if server == "" {
			server = "demo"
		}
		j := jsonMatrixRow{
			Workload: r.row.name(), Transport: r.row.transport, Serial: r.row.serial, Server: server, Tool: r.row.tool,
			Concurrency: r.row.concurrency, Skipped: r.skipped,
		}
		if r.skipped == "" {
			j.jsonMatrixPhase, j.Cold = phase(r.warm), phase(r.cold)
			j.LimitSettledMS, j.Limit = msOf(r.cold.pool.settle), r.cold.pool.limit
			j.SessionsConnectedMS.Exclusive = msOf(r.cold.exclusive.sessionsAt)
			j.SessionsConnectedMS.Pooled = msOf(r.cold.pool.sessionsAt)
		}
		out.Matrix[i] = j
	}
	return json.NewEncoder(w).Encode(out)
}
