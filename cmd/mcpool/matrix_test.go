package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type matrixJSON struct {
	Matrix []struct {
		Workload       string   `json:"workload"`
		Transport      string   `json:"transport"`
		Serial         bool     `json:"serial"`
		Tool           string   `json:"tool"`
		Concurrency    int      `json:"concurrency"`
		Server         string   `json:"server"`
		Skipped        string   `json:"skipped"`
		Exclusive      jsonRun  `json:"exclusive"`
		Pooled         jsonRun  `json:"pooled"`
		CallsPerSRatio *float64 `json:"calls_per_s_ratio"`
		P99Ratio       *float64 `json:"p99_ratio"`
		Cold           struct {
			Exclusive      jsonRun  `json:"exclusive"`
			Pooled         jsonRun  `json:"pooled"`
			CallsPerSRatio *float64 `json:"calls_per_s_ratio"`
			P99Ratio       *float64 `json:"p99_ratio"`
		} `json:"cold"`
		LimitSettledMS      float64 `json:"limit_settled_ms"`
		Limit               int     `json:"limit"`
		SessionsConnectedMS struct {
			Exclusive float64 `json:"exclusive"`
			Pooled    float64 `json:"pooled"`
		} `json:"sessions_connected_ms"`
	} `json:"matrix"`
}

func TestBenchMatrixJSON(t *testing.T) {
	selfCommand(t)
	r := runCLI(t, "bench", "--matrix", "--calls", "16", "--json", "--warmup", "0")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var out matrixJSON
	if err := dec.Decode(&out); err != nil || dec.More() {
		t.Fatalf("stdout is not one matrix JSON document (%v):\n%s", err, r.stdout)
	}
	if len(out.Matrix) != len(matrixRows) {
		t.Fatalf("%d rows, want %d", len(out.Matrix), len(matrixRows))
	}
	serial := 0
	for i, row := range out.Matrix {
		want := matrixRows[i]
		if row.Transport != want.transport || row.Serial != want.serial || row.Tool != want.tool ||
			row.Concurrency != want.concurrency || row.Workload != want.name() {
			t.Errorf("row %d: %+v, want %+v", i, row, want)
		}
		if row.Serial {
			serial++
		}
		if row.Skipped != "" {
			t.Logf("row %d (%s) skipped: %s", i, row.Workload, row.Skipped)
			continue
		}
		if row.Limit < 1 || row.LimitSettledMS < -1 || row.SessionsConnectedMS.Pooled < 0 {
			t.Errorf("row %d (%s): limit %d settled at %vms, sessions connected at %vms", i, row.Workload, row.Limit, row.LimitSettledMS, row.SessionsConnectedMS.Pooled)
		}
		for _, m := range []jsonRun{row.Exclusive, row.Pooled, row.Cold.Exclusive, row.Cold.Pooled} {
			// 16 calls in each of the default 2 passes.
			if m.Calls != 32 || m.Errors != 0 || m.P50MS <= 0 || m.P99MS < m.P50MS || m.CallsPerS <= 0 || m.CPUPerCallUS <= 0 {
				t.Errorf("row %d (%s): %+v: want 32 calls, no errors, 0 < p50 <= p99, calls/s and cpu/call > 0", i, row.Workload, m)
			}
		}
		if row.Exclusive.Mode != modeExclusive || row.Pooled.Mode != modePooled {
			t.Errorf("row %d: modes %q and %q", i, row.Exclusive.Mode, row.Pooled.Mode)
		}
		if row.CallsPerSRatio == nil || row.P99Ratio == nil || *row.CallsPerSRatio <= 0 || *row.P99Ratio <= 0 ||
			row.Cold.CallsPerSRatio == nil || row.Cold.P99Ratio == nil {
			t.Errorf("row %d: ratios %v %v, want both positive", i, row.CallsPerSRatio, row.P99Ratio)
		}
	}
	if serial == 0 {
		t.Error("no row runs against a serial server")
	}
	wantNoChildren(t)
}

func TestBenchMatrixTable(t *testing.T) {
	selfCommand(t)
	r := runCLI(t, "bench", "--matrix", "--calls", "8", "--warmup", "20ms", "--passes", "1")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"workload", "callers", "excl. c/s", "pooled c/s", "cpu/call", "c/s ratio", "p99 ratio", "cold", "warm", "settled"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in the table:\n%s", want, r.stdout)
		}
	}
	for _, row := range matrixRows {
		if !strings.Contains(r.stdout, row.name()) {
			t.Errorf("no row %q:\n%s", row.name(), r.stdout)
		}
	}
	wantNoChildren(t)
}

func TestBenchMatrixUsage(t *testing.T) {
	wantOneLineError(t, runCLI(t, "bench", "--matrix", "--url", "http://127.0.0.1:1/mcp"), 2, "--url does not apply")
	wantOneLineError(t, runCLI(t, "bench", "--matrix", "--concurrency", "3"), 2, "--concurrency")
	wantOneLineError(t, runCLI(t, "bench", "--matrix", "--passes", "0"), 2, "--passes")
	wantOneLineError(t, runCLI(t, "bench", "--matrix", "--rows", "nomatch"), 2, `--rows "nomatch" matches no row; the rows: echo, http ×1;`)
	wantOneLineError(t, runCLI(t, "bench", "--chart", "out.gif"), 2, ".svg or .png")
}

// The settling time: the end of the first stretch away from the value the
// limit held most of the warm run, or of a later stretch longer than a
// probe; a short probe does not unsettle it.
func TestSettling(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	trace := func(limits ...int) []traceSample { // one sample every 100 ms
		out := make([]traceSample, len(limits))
		for i, l := range limits {
			out[i] = traceSample{at: ms(100 * i), limit: l}
		}
		return out
	}
	for _, c := range []struct {
		name      string
		samples   []traceSample
		warmFrom  time.Duration
		settle    time.Duration
		wantLimit int
	}{
		{"at once", trace(1, 1, 1, 1, 1, 1), ms(300), 0, 1},
		{"ramp", trace(1, 2, 8, 32, 32, 32, 32, 32), ms(400), ms(300), 32},
		{"a short probe later", trace(1, 1, 1, 2, 1, 1, 1, 1), ms(400), 0, 1},
		{"a long stretch away", trace(1, 1, 2, 2, 2, 2, 1, 1, 1, 1), ms(500), ms(600), 1},
		{"never back", trace(1, 1, 1, 1, 1, 4, 4, 4, 4), ms(0), -1, 1},
		{"a probe the run ended in", trace(1, 1, 1, 1, 1, 1, 4), ms(0), 0, 1},
	} {
		settle, limit := settling(c.samples, c.warmFrom)
		if settle != c.settle || limit != c.wantLimit {
			t.Errorf("%s: settled at %v on %d, want %v on %d", c.name, settle, limit, c.settle, c.wantLimit)
		}
	}
}
