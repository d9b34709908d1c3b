package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchChartSVG(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.svg")
	r := runCLI(t, "bench", "--calls", "20", "--concurrency", "4", "--chart", file)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	if !strings.Contains(svg, "<svg") {
		t.Fatalf("%s is not SVG: %.200s", file, svg)
	}
	for _, want := range []string{"call latency by percentile", "percentile of successful calls (%)",
		"latency (ms, log scale)", "per-call: p50", "exclusive: p50", "pooled: p50", "tool echo, 20 calls per mode, 4 callers"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart has no %q", want)
		}
	}
}

func TestBenchChartPNG(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.PNG")
	r := runCLI(t, "bench", "--calls", "20", "--modes", "pooled", "--chart", file)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", file, err)
	}
	if cfg.Width < 400 || cfg.Height < 250 {
		t.Errorf("chart is %dx%d pixels, too small to read", cfg.Width, cfg.Height)
	}
}
