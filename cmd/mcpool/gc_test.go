package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	v := debug.SetGCPercent(100)
	debug.SetGCPercent(v)
	return v
}

func TestTuneGatewayGC(t *testing.T) {
	before := gcPercent()
	t.Run("GOGC unset", func(t *testing.T) {
		t.Setenv("GOGC", "") // restores the variable after the test
		os.Unsetenv("GOGC")
		restore := tuneGatewayGC()
		if got := gcPercent(); got != gatewayGCPercent {
			t.Errorf("GC percent %d while the gateway runs, want %d", got, gatewayGCPercent)
		}
		restore()
		if got := gcPercent(); got != before {
			t.Errorf("GC percent %d after the gateway, want %d back", got, before)
		}
	})
	t.Run("GOGC set", func(t *testing.T) {
		t.Setenv("GOGC", "150")
		restore := tuneGatewayGC()
		defer restore()
		if got := gcPercent(); got != before {
			t.Errorf("GC percent %d with $GOGC set, want it left at %d", got, before)
		}
	})
}
