package oauth_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool/oauth"
	"golang.org/x/time/rate"
)

func TestLimiterPerIdentity(t *testing.T) {
	t.Parallel()
	l := oauth.NewLimiter(oauth.LimiterConfig{
		Rate: 1, Burst: 3,
		Override: func(key string) (rate.Limit, int, bool) {
			switch key {
			case "robot":
				return rate.Inf, 0, true
			case "vip":
				return 1, 10, true
			}
			return 0, 0, false
		},
	})
	for i := range 3 {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("call %d within the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("alice")
	if ok || retry <= 0 || retry > time.Second {
		t.Errorf("beyond the burst: ok=%v retryAfter=%v, want refused with 0 < retryAfter <= 1s", ok, retry)
	}
	if ok, _ := l.Allow("bob"); !ok {
		t.Error("another identity is affected")
	}
	for i := range 100 {
		if ok, _ := l.Allow("robot"); !ok {
			t.Fatalf("exempt key refused at call %d", i+1)
		}
	}
	n := 0
	for {
		if ok, _ := l.Allow("vip"); !ok {
			break
		}
		n++
	}
	if n != 10 {
		t.Errorf("override burst: %d calls, want 10", n)
	}
	if ok, _ := oauth.NewLimiter(oauth.LimiterConfig{}).Allow("x"); !ok {
		t.Error("zero config limits")
	}
}

// TestLimiterMemory100k: 100,000 identities cost a bounded amount of heap,
// and once idle their buckets are evicted and the memory returned.
func TestLimiterMemory100k(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k identities")
	}
	const n = 100_000
	base := heap()
	// The subjects count: a limiter keeps its keys. (So does the test's
	// slice of them, 1.6 MB of string headers.)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08d@example.com", i)
	}
	// The limiter's clock stands still while the identities arrive, then
	// moves past the idle eviction time.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	l := oauth.NewLimiter(oauth.LimiterConfig{Rate: 10, Burst: 20, IdleEviction: 10 * time.Minute})
	oauth.SetLimiterClock(l, func() time.Time { return time.Unix(0, clock.Load()) })
	start := time.Now()
	for _, k := range keys {
		if ok, _ := l.Allow(k); !ok {
			t.Fatal("first call refused")
		}
	}
	elapsed := time.Since(start)
	if l.Len() != n {
		t.Fatalf("%d buckets for %d identities", l.Len(), n)
	}
	full := heap()
	perKey := float64(full-base) / float64(l.Len())
	t.Logf("limiter: %d identities in %v; heap %.1f MB (%.0f B per identity)", l.Len(), elapsed, float64(full-base)/1e6, perKey)
	if full-base > 64<<20 {
		t.Errorf("100k identities take %.1f MB of heap", float64(full-base)/1e6)
	}
	clock.Add(int64(9 * time.Minute))
	l.Sweep()
	if l.Len() != n {
		t.Fatalf("%d of %d identities evicted before the idle time", n-l.Len(), n)
	}
	clock.Add(int64(time.Minute))
	l.Sweep()
	if l.Len() != 0 {
		t.Fatalf("%d identities left after the idle time", l.Len())
	}
	if ok, _ := l.Allow(keys[0]); !ok {
		t.Error("an evicted identity does not start with a full bucket")
	}
	keys = nil
	after := heap()
	t.Logf("limiter: after eviction heap %.2f MB above baseline", float64(int64(after)-int64(base))/1e6)
	if int64(after)-int64(base) > int64(full-base)/10 {
		t.Errorf("eviction kept %.1f MB of %.1f MB", float64(after-base)/1e6, float64(full-base)/1e6)
	}
	runtime.KeepAlive(l)
}

func heap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
