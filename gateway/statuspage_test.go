package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
)

// The status page in a real headless browser (Debian's chromium, driven
// with chromedp): each configured server's row shows live figures, updated
// by the page's own polling while calls run.
func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed and scripts/test could not install it (apt-get install -y chromium needs root): the status page test needs a real browser")
	}
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	g := newGate()
	kvURL := g.url(t)
	kv := newPool(t, mcpool.Config{URL: kvURL})
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
		{Name: "kv", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(kv), Config: mcpool.Config{URL: kvURL}, Spares: 1},
	}})
	base := strings.TrimSuffix(url, "mcp")

	// Calls keep running on both servers while the page is open.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	cs := connect(t, url, "2025-11-25", nil)
	for _, tool := range []string{"demo__echo", "kv__get"} {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = call(ctx, cs, tool, map[string]any{"message": "x"})
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The first run starts the browser, and lives as long as its context:
	// no timeout on it (chromedp.Run's rule).
	if err := chromedp.Do(bctx, chromedp.Navigate(base)); err != nil {
		t.Fatalf("loading the status page: %v", err)
	}
	tctx, tcancel := context.WithTimeout(bctx, 60*time.Second)
	defer tcancel()
	text := func(sel string) string {
		t.Helper()
		// One evaluation reads the node and its text at once: the page
		// replaces its rows every second, so a node found by one query
		// may be gone by the next.
		q, _ := json.Marshal(sel)
		s, err := chromedp.Run(tctx, chromedp.Evaluate[string](`(document.querySelector(`+string(q)+`) || {}).innerText || ""`))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	for _, name := range []string{"demo", "kv"} {
		row := fmt.Sprintf(`tr[data-server=%q]`, name)
		if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
			t.Fatalf("row of %s: %v", name, err)
		}
		first := text(row + " td.rate")
		// Live: the page's polling shows a call rate above zero and a
		// latency while calls run.
		deadline := time.Now().Add(30 * time.Second)
		for {
			rate, p50, status, sessions := text(row+" td.rate"), text(row+" td.p50"), text(row+" td.status"), text(row+" td.sessions")
			health := text(row + " td.health")
			r, _ := strconv.ParseFloat(rate, 64)
			l, _ := strconv.ParseFloat(p50, 64)
			if r > 0 && l > 0 && status == "healthy" && sessions != "0/0/0" && strings.HasPrefix(health, "connected ") {
				t.Logf("%s: %s calls/s, p50 %s ms, %s, health %s, sessions %s (first render: %s calls/s)", name, rate, p50, status, health, sessions, first)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("row of %s never showed live figures: calls/s %q, p50 %q, status %q, health %q, sessions %q", name, rate, p50, status, health, sessions)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	updated1 := text("#updated")
	deadline := time.Now().Add(20 * time.Second)
	for text("#updated") == updated1 {
		if time.Now().After(deadline) {
			t.Fatalf("the page stopped refreshing: updated stays %q", updated1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
