package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type chaosBenchJSON struct {
	Runs []struct {
		Mode          string  `json:"mode"`
		Calls         int     `json:"calls"`
		Errors        int     `json:"errors"`
		P50MS         float64 `json:"p50_ms"`
		P99MS         float64 `json:"p99_ms"`
		CallsPerS     float64 `json:"calls_per_s"`
		CPUPerCallUS  float64 `json:"cpu_per_call_us"`
		CloseWarnings int     `json:"close_warnings"`
		Chaos         *struct {
			Fault       string         `json:"fault"`
			EveryMS     float64        `json:"every_ms"`
			Faults      int            `json:"faults"`
			Deaths      *uint64        `json:"deaths"`
			Reconnects  *uint64        `json:"reconnects"`
			Retries     *uint64        `json:"retries"`
			LostCalls   *uint64        `json:"lost_calls"`
			ErrorKinds  map[string]int `json:"error_kinds"`
			CallsAfter  int            `json:"calls_after"`
			ErrorsAfter int            `json:"errors_after"`
			Healed      bool           `json:"healed"`
		} `json:"chaos"`
	} `json:"runs"`
}

// chaosArgs is a workload that lasts long enough for several faults per
// mode at 100ms: 300 calls of 10ms, 8 at a time, take 375ms at least. The
// sleep tool is read-only, so the pool may retry it.
var chaosArgs = []string{"--json", "--chaos", "100ms", "--calls", "300", "--concurrency", "8",
	"--tool", "sleep", "--args", `{"ms":10}`}

// runChaos runs bench with chaosArgs and checks what holds whatever the
// timing: it exits 0, prints valid JSON with a chaos object per mode, every
// mode saw faults of the right kind, and every call after the faults
// stopped succeeded.
func runChaos(t *testing.T, fault string, extra ...string) chaosBenchJSON {
	t.Helper()
	start := time.Now()
	r := runCLI(t, append(append([]string{"bench"}, chaosArgs...), extra...)...)
	t.Logf("bench --chaos took %v; stderr:\n%s", time.Since(start), r.stderr)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var out chaosBenchJSON
	if err := dec.Decode(&out); err != nil || dec.More() {
		t.Fatalf("stdout is not one bench JSON document (%v):\n%s", err, r.stdout)
	}
	if len(out.Runs) != len(allModes) {
		t.Fatalf("%d runs, want %d:\n%s", len(out.Runs), len(allModes), r.stdout)
	}
	for _, run := range out.Runs {
		c := run.Chaos
		if c == nil {
			t.Errorf("%s: no chaos object", run.Mode)
			continue
		}
		if c.Fault != fault || c.EveryMS != 100 || c.Faults == 0 {
			t.Errorf("%s: fault %q every %vms, %d faults; want %s every 100ms, at least one", run.Mode, c.Fault, c.EveryMS, c.Faults, fault)
		}
		sum := 0
		for _, n := range c.ErrorKinds {
			sum += n
		}
		if sum != run.Errors {
			t.Errorf("%s: error kinds %v add up to %d, want the run's %d errors", run.Mode, c.ErrorKinds, sum, run.Errors)
		}
		if !c.Healed || c.CallsAfter == 0 || c.ErrorsAfter != 0 {
			t.Errorf("%s: healed %v, %d calls after the faults, %d failed; want healed", run.Mode, c.Healed, c.CallsAfter, c.ErrorsAfter)
		}
		pool := run.Mode != modePerCall
		if got := c.Deaths != nil && c.Reconnects != nil && c.Retries != nil && c.LostCalls != nil; got != pool {
			t.Errorf("%s: pool figures present: %v, want %v", run.Mode, got, pool)
		}
		if run.Errors > run.Calls/2 {
			t.Errorf("%s: %d of %d calls failed: the faults should cost a few", run.Mode, run.Errors, run.Calls)
		}
	}
	return out
}

func TestBenchChaosHTTP(t *testing.T) {
	runChaos(t, faultBreak)
}

func TestBenchChaosStdio(t *testing.T) {
	out := runChaos(t, faultKill, "--stdio", selfStdio(t))
	for _, run := range out.Runs {
		c := run.Chaos
		// A kill always ends a session, and the pool notices every one
		// within milliseconds of it; the last kill is followed by the quiet
		// calls.
		if run.Mode != modePerCall && (c.Deaths == nil || *c.Deaths == 0) {
			t.Errorf("%s: %d kills but no session died", run.Mode, c.Faults)
		}
	}
	wantNoChildren(t)
}

func TestBenchChaosTable(t *testing.T) {
	r := runCLI(t, "bench", "--chaos", "50ms", "--modes", "pooled", "--calls", "100", "--concurrency", "4",
		"--tool", "sleep", "--args", `{"ms":5}`)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "\nchaos: every 50ms, reset every TCP connection to the server\n") {
		t.Errorf("no chaos header under the table:\n%s", r.stdout)
	}
	var line string
	for l := range strings.SplitSeq(r.stdout, "\n") {
		if strings.HasPrefix(l, "pooled:") && strings.Contains(l, "break") {
			line = l
		}
	}
	for _, want := range []string{"died", "reconnect", "retr", "lost call", "error", "healed: yes"} {
		if !strings.Contains(line, want) {
			t.Errorf("chaos line %q does not mention %q", line, want)
		}
	}
}

func TestBenchChaosUsage(t *testing.T) {
	wantOneLineError(t, runCLI(t, "bench", "--chaos", "-1s"), 2, "--chaos")
	wantOneLineError(t, runCLI(t, "bench", "--chaos", "often"), 2, "-chaos")
}

// Without --chaos the JSON has no chaos object: decodeBench, which knows
// only the original fields, is the check.
func TestBenchNoChaosJSONUnchanged(t *testing.T) {
	r := runCLI(t, "bench", "--json", "--modes", "pooled", "--calls", "10")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	decodeBench(t, r.stdout)
}

func TestChaosOutcome(t *testing.T) {
	lost := &mcpool.SessionLostError{Tool: "x", Cause: io.EOF}
	healed := &modeRun{mode: modePooled, calls: 10, errors: 2, firstErr: lost,
		chaos: &chaosResult{kinds: map[string]int{"session lost": 2}, after: 3}}
	var stderr bytes.Buffer
	if err := chaosOutcome([]*modeRun{healed}, &stderr); err != nil {
		t.Errorf("healed run with failed calls: %v, want nil", err)
	}
	if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "2 of 10 calls failed under --chaos (2 session lost)") {
		t.Errorf("stderr %q, want one line counting the failures", s)
	}

	sick := &modeRun{mode: modeExclusive, calls: 10, errors: 1, firstErr: io.EOF,
		chaos: &chaosResult{kinds: map[string]int{"connection lost (EOF)": 1}, after: 3, afterErrors: 1, firstAfterErr: io.EOF}}
	err := chaosOutcome([]*modeRun{healed, sick}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "exclusive: did not heal: 1 of the 3 calls") || !errors.Is(err, io.EOF) {
		t.Errorf("unhealed run: %v, want a did-not-heal error wrapping the first failure", err)
	}
}

func TestErrorKinds(t *testing.T) {
	kinds := map[string]int{}
	for _, err := range []error{
		&mcpool.SessionLostError{Cause: io.EOF},
		fmt.Errorf("calling: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}),
		fmt.Errorf("x: %w", mcp.ErrConnectionClosed),
		io.ErrUnexpectedEOF,
		errors.New("something else"),
		fmt.Errorf("closing the session: %w", &exec.ExitError{}),
		&mcpool.SessionLostError{Cause: io.EOF},
	} {
		kinds[errorKind(err)]++
	}
	want := "2 session lost, 1 connection closed, 1 connection lost (EOF), 1 connection reset, 1 other, 1 server exited"
	if got := kindsText(kinds); got != want {
		t.Errorf("kindsText = %q, want %q", got, want)
	}
}

func TestChaosTail(t *testing.T) {
	for _, c := range []struct{ calls, conc, want int }{
		{1000, 8, 100}, {300, 8, 30}, {40, 8, 8}, {10, 8, 5}, {1, 8, 1}, {2, 1, 1},
	} {
		if got := chaosTail(c.calls, c.conc); got != c.want {
			t.Errorf("chaosTail(%d, %d) = %d, want %d", c.calls, c.conc, got, c.want)
		}
	}
}
