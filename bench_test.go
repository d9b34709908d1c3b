package mcpool_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func benchPool(b *testing.B, cfg mcpool.Config) *mcpool.Pool {
	b.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := mcpool.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// BenchmarkAcquireRelease measures the pool's own cost: no I/O happens.
func BenchmarkAcquireRelease(b *testing.B) {
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		p := benchPool(b, mcpool.Config{NewTransport: nt})
		b.ReportAllocs()
		for b.Loop() {
			l, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		// Room for every goroutine, so the figure is contention, not waiting.
		p := benchPool(b, mcpool.Config{NewTransport: nt, MinSessions: 4, MaxSessions: 4, MaxCallsPerSession: 256})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l, err := p.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				l.Release()
			}
		})
	})
}

// BenchmarkCallTool compares a call through the pool with the same call on
// one raw shared session, on the same server in the same run.
func BenchmarkCallTool(b *testing.B) {
	ctx := context.Background()
	// A params value per run: the SDK writes protocol metadata into the
	// params a raw session is given.
	newParams := func() *mcp.CallToolParams {
		return &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}}
	}
	// One server per transport: a go-sdk server that has served a
	// 2026-07-28 in-memory session rejects later stateful HTTP calls.
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	b.Cleanup(ts.Close)
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	targets := []struct {
		name string
		cfg  mcpool.Config
	}{
		{"memory", mcpool.Config{NewTransport: nt}},
		{"http", mcpool.Config{URL: ts.URL}},
	}
	for _, tg := range targets {
		b.Run(tg.name+"/raw", func(b *testing.B) {
			// One session from a pool of one, used directly: the baseline.
			p := benchPool(b, tg.cfg)
			l, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Release()
			cs := l.Session()
			params := newParams()
			b.ReportAllocs()
			var lat latencies
			for b.Loop() {
				t0 := time.Now()
				if _, err := cs.CallTool(ctx, params); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(t0))
			}
			lat.report(b)
		})
		b.Run(tg.name+"/pooled", func(b *testing.B) {
			p := benchPool(b, tg.cfg)
			params := newParams()
			b.ReportAllocs()
			var lat latencies
			for b.Loop() {
				t0 := time.Now()
				if _, err := p.CallTool(ctx, params); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(t0))
			}
			lat.report(b)
		})
	}
}

// latencies keeps the last 4096 per-call times so that a benchmark can
// report its median (p50-ns) next to Go's mean (ns/op).
type latencies struct {
	ring [4096]time.Duration
	n    int
}

func (l *latencies) add(d time.Duration) { l.ring[l.n%len(l.ring)] = d; l.n++ }

func (l *latencies) report(b *testing.B) {
	v := slices.Clone(l.ring[:min(l.n, len(l.ring))])
	if len(v) == 0 {
		return
	}
	slices.Sort(v)
	b.ReportMetric(float64(v[len(v)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkSerialServer: 32 concurrent callers of a server that handles
// one call at a time per session (demoserver Serial, in memory), with
// MaxSessions 4: exclusive lending (MaxCallsPerSession 1) against the
// default selection. Profile it with -blockprofile to see where calls queue.
func BenchmarkSerialServer(b *testing.B) {
	for _, perSession := range []int{1, 0} {
		name := "pooled"
		if perSession == 1 {
			name = "exclusive"
		}
		b.Run(name, func(b *testing.B) {
			nt, _ := inMemory(demoserver.New(demoserver.Options{Serial: true}))
			p := benchPool(b, mcpool.Config{NewTransport: nt, MaxSessions: 4, MaxCallsPerSession: perSession})
			ctx := context.Background()
			b.SetParallelism(16) // 32 callers on 2 cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				params := &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 1}}
				for pb.Next() {
					if _, err := p.CallTool(ctx, params); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(p.Stats().SessionsCreated), "sessions")
		})
	}
}
