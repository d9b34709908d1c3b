package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/gateway"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// "mcpool --version" and "mcpool version" print the build on one line.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errOut bytes.Buffer
		if code := runContext(context.Background(), args, &out, &errOut); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		line := out.String()
		for _, w := range []string{"mcpool ", "go1.", "go-sdk v1."} {
			if !strings.Contains(line, w) {
				t.Errorf("%v printed %q: no %q", args, line, w)
			}
		}
		if strings.Count(line, "\n") != 1 {
			t.Errorf("%v printed %q: want one line", args, line)
		}
	}
	var out, errOut bytes.Buffer
	if code := runContext(context.Background(), []string{"version", "extra"}, &out, &errOut); code != exitUsage {
		t.Fatalf("version extra: exit %d, want %d", code, exitUsage)
	}
}

// The gateway's collector exports mcpool_build_info, even before the
// gateway is made.
func TestBuildInfoGauge(t *testing.T) {
	var gw *gateway.Gateway
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(gatewayCollector{gw: &gw})
	n, err := testutil.GatherAndCount(reg, "mcpool_build_info")
	if err != nil || n != 1 {
		t.Fatalf("mcpool_build_info: %d series, %v", n, err)
	}
}
