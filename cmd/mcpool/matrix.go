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
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// matrixRow is one workload of the matrix.
type matrixRow struct {
	transport   string // "http" or "stdio"
	serial      bool   // the server handles one call at a time per session
	tool, args  string
	concurrency int
	calls       int // the default; --calls overrides it
}

// name is the row's label in the table.
func (r matrixRow) name() string {
	n := r.tool
	if r.tool == "sleep" {
		var a struct{ MS int }
		_ = json.Unmarshal([]byte(r.args), &a)
		n = fmt.Sprintf("%dms tool", a.MS)
	}
	n += ", " + r.transport
	if r.serial {
		n += " serial"
	}
	return n
}

const echoArgs = `{"message":"hello"}`

// matrixRows are the standard workloads. Calls per row keep each mode to a
// few seconds on 2 cores; the serial rows call a 1ms tool, so that a
// server handling one call at a time costs what it costs a real one.
var matrixRows = []matrixRow{
	{"http", false, "echo", echoArgs, 1, 2000},
	{"http", false, "echo", echoArgs, 8, 4000},
	{"http", false, "echo", echoArgs, 32, 4000},
	{"http", false, "echo", echoArgs, 128, 4000},
	{"http", false, "sleep", `{"ms":50}`, 64, 640},
	{"stdio", false, "echo", echoArgs, 8, 4000},
	{"stdio", false, "echo", echoArgs, 32, 4000},
	{"stdio", true, "sleep", `{"ms":1}`, 8, 2000},
	{"stdio", true, "sleep", `{"ms":1}`, 32, 2000},
}

// matrixResult is one row's outcome.
type matrixResult struct {
	row             matrixRow
	exclusive, pool *modeRun
}

func runMatrix(ctx context.Context, b *benchFlags, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--matrix: finding this command's executable: %w", err)
	}
	url, stopHTTP, err := startDemoProcess(ctx, exe)
	if err != nil {
		return err
	}
	defer stopHTTP()
	var results []matrixResult
	for _, row := range matrixRows {
		rb := *b
		rb.tool, rb.concurrency = row.tool, row.concurrency
		if !b.set["calls"] {
			rb.calls = row.calls
		}
		rb.label = row.name() + fmt.Sprintf(" ×%d ", row.concurrency)
		tf := targetFlags{connectTimeout: b.target.connectTimeout, verbose: b.target.verbose}
		if row.transport == "http" {
			tf.url = url
		} else {
			tf.stdio = shellQuote(exe) + " demo-server --stdio"
			if row.serial {
				tf.stdio += " --serial"
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
		for _, m := range []*modeRun{r.exclusive, r.pool} {
			if m.errors > 0 {
				return fmt.Errorf("%s at %d callers: %s: %d of %d calls failed; first error: %w",
					r.row.name(), r.row.concurrency, m.mode, m.errors, m.calls, m.firstErr)
			}
		}
	}
	return nil
}

// matrixOne runs one row, exclusive then pooled.
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
	if res.exclusive, err = benchPool(ctx, tgt, b, modeExclusive, params, nil, stderr); err != nil {
		return res, fmt.Errorf("%s: %w", modeExclusive, err)
	}
	if res.pool, err = benchPool(ctx, tgt, b, modePooled, params, nil, stderr); err != nil {
		return res, fmt.Errorf("%s: %w", modePooled, err)
	}
	return res, nil
}

// startDemoProcess runs "exe demo-server --http 127.0.0.1:0" and returns
// its URL, read from the line it prints once listening, and a func that
// stops it (SIGTERM, then SIGKILL after shutdownTimeout, or closeGrace once
// ctx has ended) and reaps it.
func startDemoProcess(ctx context.Context, exe string) (url string, stop func(), err error) {
	cmd := exec.Command(exe, "demo-server", "--http", "127.0.0.1:0")
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
	const row = "%-22s %7v | %10v %9v %9v %8v | %10v %9v %9v %8v | %8v %9v %8v\n"
	fmt.Fprintf(w, "exclusive: one call per session at a time; pooled: calls multiplexed; MaxSessions %d\n\n", maxSessions)
	fmt.Fprintf(w, row, "workload", "callers",
		"excl. c/s", "p50", "p99", "cpu/call",
		"pooled c/s", "p50", "p99", "cpu/call",
		"c/s ratio", "p99 ratio", "sessions")
	for _, r := range results {
		e, p := r.exclusive, r.pool
		fmt.Fprintf(w, row, r.row.name(), r.row.concurrency,
			fmt.Sprintf("%.0f", e.callsPerSecond()), formatMS(percentile(e.ok, 0.50)), formatMS(percentile(e.ok, 0.99)), formatUS(e.cpuPerCall()),
			fmt.Sprintf("%.0f", p.callsPerSecond()), formatMS(percentile(p.ok, 0.50)), formatMS(percentile(p.ok, 0.99)), formatUS(p.cpuPerCall()),
			fmt.Sprintf("%.2fx", ratio(p.callsPerSecond(), e.callsPerSecond())),
			fmt.Sprintf("%.2fx", ratio(float64(percentile(p.ok, 0.99)), float64(percentile(e.ok, 0.99)))),
			fmt.Sprintf("%d/%d", e.sessions, p.sessions))
	}
	_, err := fmt.Fprintln(w, "\nratios are pooled / exclusive; sessions are those created, exclusive/pooled; cpu/call is this process's user+sys CPU per call")
	return err
}

// jsonMatrixRow is one element of bench --matrix --json's "matrix".
type jsonMatrixRow struct {
	Workload    string  `json:"workload"`
	Transport   string  `json:"transport"`
	Serial      bool    `json:"serial"`
	Tool        string  `json:"tool"`
	Concurrency int     `json:"concurrency"`
	Exclusive   jsonRun `json:"exclusive"`
	Pooled      jsonRun `json:"pooled"`
	// Pooled over exclusive; null when exclusive measured nothing.
	CallsPerSRatio *float64 `json:"calls_per_s_ratio"`
	P99Ratio       *float64 `json:"p99_ratio"`
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
	for i, r := range results {
		e, p := r.exclusive, r.pool
		out.Matrix[i] = jsonMatrixRow{
			Workload: r.row.name(), Transport: r.row.transport, Serial: r.row.serial, Tool: r.row.tool,
			Concurrency: r.row.concurrency, Exclusive: e.json(), Pooled: p.json(),
			CallsPerSRatio: opt(ratio(p.callsPerSecond(), e.callsPerSecond())),
			P99Ratio:       opt(ratio(float64(percentile(p.ok, 0.99)), float64(percentile(e.ok, 0.99)))),
		}
	}
	return json.NewEncoder(w).Encode(out)
}
