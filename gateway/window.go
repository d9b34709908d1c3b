package gateway

import (
	"slices"
	"sync"
	"time"
)

// window keeps the calls of the last minute, as measured at the gateway
// (admission wait and upstream call together), for the status page.
// Adding is O(1) under a short lock; the ring holds the newest samples, so
// at very high rates the figures cover the newest windowSize calls.
type window struct {
	mu    sync.Mutex
	ring  [windowSize]sample
	n     uint64
	total uint64
	errs  uint64
}

const (
	windowSize = 8192
	windowSpan = time.Minute
)

type sample struct {
	at  int64 // unix nanoseconds at the end of the call
	dur int64
	err bool
}

func (w *window) add(d time.Duration, failed bool) {
	now := time.Now().UnixNano()
	w.mu.Lock()
	w.ring[w.n%windowSize] = sample{at: now, dur: int64(d), err: failed}
	w.n++
	w.total++
	if failed {
		w.errs++
	}
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
}

func (w *window) figures(since time.Time) windowFigures {
	now := time.Now()
	cut := now.Add(-windowSpan).UnixNano()
	w.mu.Lock()
	n := min(w.n, windowSize)
	durs := make([]int64, 0, n)
	var f windowFigures
	for i := range n {
		s := w.ring[i]
		if s.at < cut {
			continue
		}
		durs = append(durs, s.dur)
		if s.err {
			f.Errors++
		}
	}
	f.TotalCalls, f.TotalErrors = w.total, w.errs
	w.mu.Unlock()
	f.Calls = len(durs)
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
