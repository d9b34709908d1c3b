package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// percentile returns the q-quantile (0 < q ≤ 1) of sorted by the
// nearest-rank method, or 0 when there is nothing to rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// callsPerSecond counts the calls that succeeded: failures finish fast and
// would flatter a broken run.
func (r *modeRun) callsPerSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(len(r.ok)) / r.wall.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func formatMS(d time.Duration) string { return fmt.Sprintf("%.2fms", ms(d)) }

func formatUS(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// jsonRun is one element of bench --json's "runs". Its fields are a
// contract with scripts: change them only with care.
type jsonRun struct {
	Mode      string  `json:"mode"`
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	CallsPerS float64 `json:"calls_per_s"`
	// CPUPerCallUS is the client process's CPU time (user+sys) during the
	// mode divided by its calls, in microseconds. With the embedded server
	// it includes the server's share, which runs in the same process.
	CPUPerCallUS float64 `json:"cpu_per_call_us"`
	// CloseWarnings counts per-call sessions whose close failed after
	// their call succeeded (a stdio server slow to exit); 0 in other modes.
	CloseWarnings int `json:"close_warnings"`
	// Chaos is present only under --chaos.
	Chaos *jsonChaos `json:"chaos,omitempty"`
}

// json is the run's element of bench --json's "runs". Figures are rounded
// to the microsecond and the tenth of a call: finer digits are noise, and
// they make the output hard to read.
func (r *modeRun) json() jsonRun {
	// Dividing by the whole number of steps (not multiplying by a step)
	// gives the float nearest the decimal, which prints without a tail.
	round := func(x float64, steps float64) float64 { return math.Round(x*steps) / steps }
	j := jsonRun{
		Mode: r.mode, Calls: r.calls, Errors: r.errors,
		P50MS:         round(ms(percentile(r.ok, 0.50)), 1000),
		P99MS:         round(ms(percentile(r.ok, 0.99)), 1000),
		CallsPerS:     round(r.callsPerSecond(), 10),
		CPUPerCallUS:  round(float64(r.cpuPerCall())/float64(time.Microsecond), 10),
		CloseWarnings: r.closeWarnings,
	}
	if r.chaos != nil {
		j.Chaos = r.chaos.json()
	}
	return j
}

func writeJSON(w io.Writer, runs []*modeRun) error {
	out := struct {
		Runs []jsonRun `json:"runs"`
	}{Runs: make([]jsonRun, len(runs))}
	for i, r := range runs {
		out.Runs[i] = r.json()
	}
	return json.NewEncoder(w).Encode(out)
}

// writeTable prints one row per mode, with the ratio of its throughput to
// the first row's, then one line of statistics per mode, then under
// --chaos (ch set) what the faults did to each mode.
func writeTable(w io.Writer, runs []*modeRun, ch *chaos) error {
	if len(runs) == 0 {
		return nil
	}
	base := runs[0].callsPerSecond()
	ratioHeader := "vs " + runs[0].mode
	row := "%-10s %7v %7v %10v %10v %10v %10v %12v\n"
	fmt.Fprintf(w, row, "mode", "calls", "errors", "p50", "p99", "cpu/call", "calls/s", ratioHeader)
	for _, r := range runs {
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2fx", r.callsPerSecond()/base)
		}
		fmt.Fprintf(w, row, r.mode, r.calls, r.errors,
			formatMS(percentile(r.ok, 0.50)), formatMS(percentile(r.ok, 0.99)),
			formatUS(r.cpuPerCall()), fmt.Sprintf("%.1f", r.callsPerSecond()), ratio)
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		if _, err := fmt.Fprintf(w, "%-10s %s\n", r.mode+":", r.note); err != nil {
			return err
		}
	}
	if ch == nil {
		return nil
	}
	fmt.Fprintf(w, "\nchaos: %s\n", ch.describe())
	for _, r := range runs {
		if _, err := fmt.Fprintf(w, "%-10s %s\n", r.mode+":", r.chaosSummary()); err != nil {
			return err
		}
	}
	return nil
}
