package gateway

import (
	"testing"
	"time"
)

// Each latency bin's upper edge is above every duration in it and at most
// 25% above the smallest.
func TestLatencyBins(t *testing.T) {
	for d := int64(1); d < 1<<41; d = d*9/8 + 1 {
		i := latencyBin(d)
		top := latencyBinTop(i)
		if d >= top && i != latencyBins-1 {
			t.Fatalf("%d ns in bin %d, whose top is %d", d, i, top)
		}
		if i > 0 && i < latencyBins-1 {
			if low := latencyBinTop(i - 1); d < low || float64(top) > 1.25*float64(low) {
				t.Fatalf("%d ns in bin %d: [%d, %d)", d, i, low, top)
			}
		}
	}
}

// The history has one point per whole second since the start, up to a
// minute, with the calls that ended in it and their p99 from the
// histogram: never below the exact figure, at most 25% above it, never
// above the slowest call.
func TestWindowHistory(t *testing.T) {
	var w window
	start := time.Now().Add(-5 * time.Second)
	if f := w.figures(start); len(f.History) < 4 || len(f.History) > 5 || f.History[0].CallsPerSec != 0 {
		t.Fatalf("before any call: %+v", f.History)
	}
	if f := w.figures(time.Now().Add(-time.Hour)); len(f.History) != 60 {
		t.Fatalf("after an hour: %d points, want 60", len(f.History))
	}
	sec := time.Now().Unix()
	for i := range 100 {
		w.add(time.Duration(i+1)*time.Millisecond, i%10 == 0)
	}
	if w.secs[sec%int64(windowSecs)].unix != sec {
		t.Skip("the second turned while adding")
	}
	for time.Now().Unix() == sec {
		time.Sleep(10 * time.Millisecond)
	}
	f := w.figures(start)
	last := f.History[len(f.History)-1]
	for _, p := range f.History {
		if p.T == sec {
			last = p
		}
	}
	if last.T != sec || last.CallsPerSec != 100 {
		t.Fatalf("the second of the calls: %+v, want t=%d with 100 calls", last, sec)
	}
	if exact := 99.0; last.P99Ms < exact || last.P99Ms > 1.25*exact || last.P99Ms > 100 {
		t.Errorf("p99 %.2f ms, want in [%.0f, %.0f]", last.P99Ms, exact, 100.0)
	}
	if f.Calls != 100 || f.Errors != 10 || f.TotalCalls != 100 || f.P99Ms != 99 {
		t.Errorf("figures: %d calls, %d errors, %d in all, p99 %.2f; want 100, 10, 100, 99", f.Calls, f.Errors, f.TotalCalls, f.P99Ms)
	}
}
