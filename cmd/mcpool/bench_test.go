package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

type benchJSON struct {
	Runs []struct {
		Mode          string  `json:"mode"`
		Calls         int     `json:"calls"`
		Errors        int     `json:"errors"`
		P50MS         float64 `json:"p50_ms"`
		P99MS         float64 `json:"p99_ms"`
		CallsPerS     float64 `json:"calls_per_s"`
		CPUPerCallUS  float64 `json:"cpu_per_call_us"`
		CloseWarnings int     `json:"close_warnings"`
	} `json:"runs"`
}

// decodeBench reads bench --json output, which must be one JSON document
// with exactly the documented fields and nothing after it.
func decodeBench(t *testing.T, stdout string) benchJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var out benchJSON
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stdout is not the bench JSON: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
	return out
}

func TestBenchJSON(t *testing.T) {
	r := runCLI(t, "bench", "--json", "--calls", "60", "--concurrency", "4")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	out := decodeBench(t, r.stdout)
	want := []string{"per-call", "exclusive", "pooled"}
	if len(out.Runs) != len(want) {
		t.Fatalf("%d runs, want %d:\n%s", len(out.Runs), len(want), r.stdout)
	}
	for i, run := range out.Runs {
		if run.Mode != want[i] || run.Calls != 60 || run.Errors != 0 || run.P50MS <= 0 ||
			run.P99MS < run.P50MS || run.CallsPerS <= 0 || run.CPUPerCallUS <= 0 || run.CloseWarnings != 0 {
			t.Errorf("run %d: %+v, want mode %s, 60 calls, no errors, 0 < p50 <= p99, calls/s > 0, cpu/call > 0, no close warnings", i, run, want[i])
		}
	}
}

// --warmup runs the workload through each pool before the clock starts:
// the pool has served more than the timed calls.
func TestBenchWarmup(t *testing.T) {
	r := runCLI(t, "bench", "--modes", "pooled", "--calls", "10", "--concurrency", "2", "--warmup", "200ms")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`pooled: +\d+ sessions? created, (\d+) acquires`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no pooled statistics line in:\n%s", r.stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n <= 11 {
		t.Errorf("%d acquires for 10 timed calls (and the warming ListTools): the warm-up did not run", n)
	}
	wantOneLineError(t, runCLI(t, "bench", "--warmup", "-1s"), 2, "--warmup")
}

func TestBenchTable(t *testing.T) {
	r := runCLI(t, "bench", "--calls", "40", "--concurrency", "4")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(r.stdout, "\n")
	if !strings.Contains(lines[0], "vs per-call") || !strings.Contains(lines[0], "cpu/call") {
		t.Errorf("header %q has no ratio column", lines[0])
	}
	for i, mode := range []string{"per-call", "exclusive", "pooled"} {
		row := lines[1+i]
		if !strings.HasPrefix(row, mode+" ") || !strings.HasSuffix(row, "x") {
			t.Errorf("row %d = %q, want mode %s and a ratio", i, row, mode)
		}
	}
	if !regexp.MustCompile(`\b[1-4] sessions? created`).MatchString(r.stdout) {
		t.Errorf("no pool statistics under the table:\n%s", r.stdout)
	}
}

func TestBenchModesAndTool(t *testing.T) {
	// Modes run in their canonical order whatever the flag says.
	r := runCLI(t, "bench", "--json", "--modes", "pooled,exclusive", "--tool", "sleep",
		"--args", `{"ms":1}`, "--calls", "16", "--concurrency", "8", "--max-sessions", "2")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	out := decodeBench(t, r.stdout)
	if len(out.Runs) != 2 || out.Runs[0].Mode != "exclusive" || out.Runs[1].Mode != "pooled" {
		t.Fatalf("runs %+v, want exclusive then pooled", out.Runs)
	}
}

func TestBenchStdio(t *testing.T) {
	// Per-call starts a process for every call; the pools start theirs
	// when warmed. All of them must be reaped by the time bench returns.
	r := runCLI(t, "bench", "--json", "--stdio", selfStdio(t), "--calls", "6", "--concurrency", "2")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	for _, run := range decodeBench(t, r.stdout).Runs {
		if run.Errors != 0 || run.Calls != 6 {
			t.Errorf("%+v: want 6 calls, no errors", run)
		}
	}
	wantNoChildren(t)
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.50, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := percentile(v, c.q); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

func TestProgressQuietOnShortRuns(t *testing.T) {
	var buf bytes.Buffer
	p := startProgress(&buf, "pooled", 10)
	p.add()
	p.stop()
	if buf.Len() != 0 {
		t.Errorf("progress wrote %q for a run shorter than %v", buf.String(), progressDelay)
	}
}

// TestBenchPerCallSlowExit runs per-call against a stdio server that keeps
// running after its input closes, until the client's SIGTERM ends it: every
// call succeeded, so the run succeeds, and the slow exits are counted apart.
func TestBenchPerCallSlowExit(t *testing.T) {
	r := runCLI(t, "bench", "--json", "--modes", "per-call", "--stdio", selfSlowExit(t),
		"--calls", "2", "--concurrency", "2")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	run := decodeBench(t, r.stdout).Runs[0]
	if run.Errors != 0 || run.CloseWarnings != 2 || run.CallsPerS <= 0 {
		t.Errorf("%+v: want 0 errors, 2 close warnings", run)
	}
	wantNoChildren(t)

	r = runCLI(t, "bench", "--modes", "per-call", "--stdio", selfSlowExit(t), "--calls", "1", "--concurrency", "1")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "1 closed with a warning after a successful call (first: signal: terminated)") {
		t.Errorf("the table does not count the slow exit:\n%s", r.stdout)
	}
}
