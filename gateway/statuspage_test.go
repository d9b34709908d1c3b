package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
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
// with chromedp) at 1,280 × 800: each configured server's row shows live
// figures and a chart of its last minute, updated by the page's own
// polling while calls run; servers on a closed port show as not connected,
// scored below the healthy threshold, with their error once; every column
// header and the error text fit the window. Set STATUS_SCREENSHOT to a
// file name to keep a screenshot of the page.
func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed and scripts/test could not install it (apt-get install -y chromium needs root): the status page test needs a real browser")
	}
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	g := newGate()
	kvURL := g.url(t)
	kv := newPool(t, mcpool.Config{URL: kvURL})
	// Two servers on a closed port: one shared, one isolated (whose
	// catalog pool the gateway makes).
	closed := closedPortURL(t)
	down := newPool(t, mcpool.Config{URL: closed, FailureThreshold: 2})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
		{Name: "kv", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(kv), Config: mcpool.Config{URL: kvURL}, Spares: 1},
		{Name: "down", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(down)},
		{Name: "gone", Mode: gateway.ModeIsolated, Config: mcpool.Config{URL: closed, FailureThreshold: 2}, Spares: -1},
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
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base)); err != nil {
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
	for _, name := range []string{"down", "gone"} {
		row := fmt.Sprintf(`tr[data-server=%q]`, name)
		if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
			t.Fatalf("row of %s: %v", name, err)
		}
		status, health := text(row+" td.status"), text(row+" td.health")
		state, score, _ := strings.Cut(health, " ")
		f, err := strconv.ParseFloat(score, 64)
		if state == string(mcpool.HealthConnected) || err != nil || f >= mcpool.HealthyScore || status == string(mcpool.StatusHealthy) {
			t.Errorf("%s, on a closed port: status %q, health %q; want not healthy, not connected, below %.2f", name, status, health, mcpool.HealthyScore)
		}
		t.Logf("%s: status %s, health %s", name, status, health)
	}
	for _, s := range gw.Status().Servers {
		if s.Name != "down" && s.Name != "gone" {
			continue
		}
		if s.Health == string(mcpool.HealthConnected) || s.Score >= mcpool.HealthyScore || s.Status == string(mcpool.StatusHealthy) {
			t.Errorf("status.json of %s: status %s, health %s %.2f; want not healthy, not connected, below %.2f", s.Name, s.Status, s.Health, s.Score, mcpool.HealthyScore)
		}
		if s.ListError == "" {
			t.Errorf("status.json of %s: no list error", s.Name)
		}
		// Each error once, even when only its counts differ.
		number := regexp.MustCompile(`[0-9][0-9.nuµmsh]*`)
		seen := map[string]bool{}
		for _, part := range strings.Split(s.ListError, "; ") {
			if key := number.ReplaceAllString(part, "#"); seen[key] {
				t.Errorf("status.json of %s: %q repeats in the list error %q", s.Name, part, s.ListError)
			} else {
				seen[key] = true
			}
		}
	}

	// Each server's chart: an SVG with a line for calls/s and one for
	// p99, the live servers' with a point per second.
	if err := chromedp.Do(tctx, chromedp.Poll[chromedp.Void](`(() => {
		const rows = document.querySelectorAll("tr[data-server]");
		if (rows.length !== 4) return false;
		for (const tr of rows) {
			if (tr.querySelectorAll("td.spark svg.spark polyline").length !== 2) return false;
			const pts = tr.querySelector("td.spark svg.spark polyline.rate").getAttribute("points").trim().split(" ");
			if (["demo", "kv"].includes(tr.dataset.server) && pts.length < 2) return false;
		}
		return true;
	})()`, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("waiting for a chart in every server's row: %v", err)
	}

	// At 1,280 × 800 every column header and the error text lie within
	// the window, and nothing scrolls sideways.
	type box struct {
		What                     string
		Left, Right, Top, Bottom float64
	}
	var fit struct {
		Width, Height, ScrollWidth float64
		Boxes                      []box
	}
	fit, err = chromedp.Run(tctx, chromedp.Evaluate[struct {
		Width, Height, ScrollWidth float64
		Boxes                      []box
	}](`(() => {
		const boxes = [];
		const add = (what, el) => { const r = el.getBoundingClientRect(); boxes.push({What: what, Left: r.left, Right: r.right, Top: r.top, Bottom: r.bottom}); };
		document.querySelectorAll("thead th").forEach(th => add("header " + th.textContent.trim(), th));
		document.querySelectorAll("tr.notes .listerror").forEach(e => add("error of " + e.closest("tr").dataset.notes, e));
		return {Width: window.innerWidth, Height: window.innerHeight, ScrollWidth: document.documentElement.scrollWidth, Boxes: boxes};
	})()`))
	if err != nil {
		t.Fatalf("measuring the page: %v", err)
	}
	if fit.Width != 1280 || fit.Height != 800 {
		t.Fatalf("window %v × %v; want 1280 × 800", fit.Width, fit.Height)
	}
	if fit.ScrollWidth > fit.Width {
		t.Errorf("the page is %v px wide in a %v px window", fit.ScrollWidth, fit.Width)
	}
	headers, errs := 0, 0
	for _, b := range fit.Boxes {
		if strings.HasPrefix(b.What, "header") {
			headers++
		} else {
			errs++
		}
		if b.Left < 0 || b.Right > fit.Width || b.Top < 0 || b.Bottom > fit.Height || b.Right <= b.Left {
			t.Errorf("%s lies at x %.0f–%.0f, y %.0f–%.0f: outside the %v × %v window", b.What, b.Left, b.Right, b.Top, b.Bottom, fit.Width, fit.Height)
		}
	}
	if headers != 16 || errs != 2 {
		t.Errorf("measured %d headers and %d error texts; want 16 and 2", headers, errs)
	}
	if file := os.Getenv("STATUS_SCREENSHOT"); file != "" {
		png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
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

// closedPortURL returns an MCP URL on a loopback port that nothing listens
// on: connects to it are refused at once.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/mcp"
}
