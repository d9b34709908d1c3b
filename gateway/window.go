package gateway

import (
	"math/bits"
	"slices"
	"sync"
	"time"
)

// window keeps the calls of the last minute, as measured at the gateway
// (admission wait and upstream call together), for the status page: a ring
// of the newest samples for the latency percentiles, and one bucket per
// second for the counts and the per-second series. Adding is O(1) under a
// short lock; at very high rates the percentiles cover the newest
// windowSize calls, while the counts stay exact.
type window struct {
	mu    sync.Mutex
	ring  [windowSize]sample
	n     uint64
	total uint64
	errs  uint64
	secs  [windowSecs]second
}

const (
	windowSize = 8192
	windowSpan = time.Minute
	windowSecs = int(windowSpan / time.Second)
)

type sample struct {
	at  int64 // unix nanoseconds at the end of the call
	dur int64
	err bool
}

// second holds the calls that ended in one second: their count and a
// histogram of their latency in quarter-octave bins.
type second struct {
	unix  int64 // the second (Unix time); 0 for a bucket never used
	calls uint32
	errs  uint32
	max   int64 // the longest call, ns
	bins  [latencyBins]uint32
}

// Latency bins: bin 0 holds calls up to 1.024 µs; above, each power of two
// is split in four, up to about 18 minutes (the last bin holds the rest).
// A bin's upper edge is at most 25% above any duration in it.
const (
	latencyMinExp = 10 // 2^10 ns
	latencyBins   = 4*(40-latencyMinExp) + 1
)

func latencyBin(d int64) int {
	if d < 1<<latencyMinExp {
		return 0
	}
	e := bits.Len64(uint64(d)) - 1
	i := 4*(e-latencyMinExp) + int(d>>(e-2)&3) + 1
	return min(i, latencyBins-1)
}

// latencyBinTop returns the upper edge of bin i, ns.
func latencyBinTop(i int) int64 {
	if i == 0 {
		return 1 << latencyMinExp
	}
	e, q := (i-1)/4+latencyMinExp, int64((i-1)%4)
	return (5 + q) << (e - 2)
}

func (w *window) add(d time.Duration, failed bool) {
	now := time.Now()
	w.mu.Lock()
	w.ring[w.n%windowSize] = sample{at: now.UnixNano(), dur: int64(d), err: failed}
	w.n++
	w.total++
	if failed {
		w.errs++
	}
	unix := now.Unix()
	b := &w.secs[unix%int64(windowSecs)]
	if b.unix != unix {
		*b = second{unix: unix}
	}
	b.calls++
	if failed {
		b.errs++
	}
	b.max = max(b.max, int64(d))
	b.bins[latencyBin(int64(d))]++
	w.mu.Unlock()
}

// windowFigures are the last minute's figures.
type windowFigures struct {
	Calls       int     `json:"calls"`       // calls ended in the last minute
	Errors      int     `json:"errors"`      // of which failed
	CallsPerSec float64 `json:"callsPerSec"` // calls / 60 s (or / uptime when shorter)
	P50Ms       float64 `json:"p50Ms"`       // median latency, ms
	P99Ms       float64 `json:"p99Ms"`       // 99th percentile, ms
	TotalCalls  uint64  `json:"totalCalls"`  // since start
	TotalErrors uint64  `json:"totalErrors"` // since start
	// History is the last minute second by second, oldest first: one
	// Point for each whole second since the gateway started, up to 60
	// (the second still running is left out).
	History []Point `json:"history,omitempty"`
}

// Point is one second of a server's calls, as measured at the gateway.
type Point struct {
	T           int64   `json:"t"`           // the second, Unix time
	CallsPerSec float64 `json:"callsPerSec"` // calls that ended in it
	// P99Ms is the 99th percentile of their latency in ms, read from a
	// histogram: at most 25% above the exact figure, and never above the
	// slowest call. 0 without calls.
	P99Ms float64 `json:"p99Ms"`
}

func (w *window) figures(since time.Time) windowFigures {
	now := time.Now()
	cut := now.Add(-windowSpan).UnixNano()
	first, last := max(since.Unix()+1, now.Unix()-int64(windowSecs)), now.Unix()-1
	var f windowFigures
	w.mu.Lock()
	n := min(w.n, windowSize)
	durs := make([]int64, 0, n)
	for i := range n {
		s := w.ring[i]
		if s.at >= cut {
			durs = append(durs, s.dur)
		}
	}
	for unix := now.Unix() - int64(windowSecs) + 1; unix <= now.Unix(); unix++ {
		if b := &w.secs[unix%int64(windowSecs)]; b.unix == unix {
			f.Calls += int(b.calls)
			f.Errors += int(b.errs)
		}
	}
	if first <= last {
		f.History = make([]Point, 0, last-first+1)
	}
	for unix := first; unix <= last; unix++ {
		p := Point{T: unix}
		if b := &w.secs[unix%int64(windowSecs)]; b.unix == unix {
			p.CallsPerSec, p.P99Ms = float64(b.calls), b.p99()
		}
		f.History = append(f.History, p)
	}
	f.TotalCalls, f.TotalErrors = w.total, w.errs
	w.mu.Unlock()
	span := min(now.Sub(since), windowSpan).Seconds()
	if span > 0 {
		f.CallsPerSec = float64(f.Calls) / span
	}
	if len(durs) > 0 {
		slices.Sort(durs)
		q := func(p float64) float64 { return float64(durs[int(p*float64(len(durs)-1)+0.5)]) / 1e6 }
		f.P50Ms, f.P99Ms = q(0.5), q(0.99)
	}
	return f
}

// p99 returns the second's 99th percentile latency in ms: the upper edge
// of the bin that holds it, capped at the slowest call.
func (b *second) p99() float64 {
	if b.calls == 0 {
		return 0
	}
	rank := uint32(0.99*float64(b.calls-1)+0.5) + 1 // the rank-th fastest call
	var seen uint32
	for i, c := range b.bins {
		if seen += c; seen >= rank {
			return float64(min(latencyBinTop(i), b.max)) / 1e6
		}
	}
	return float64(b.max) / 1e6
}
