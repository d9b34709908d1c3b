package mcpool

import (
	"io"
	"log/slog"
	"testing"
)

// A message below the logger's level costs no allocation: the level is
// checked before the "mcpool: " prefix is added.
func TestLogBelowLevelDoesNotAllocate(t *testing.T) {
	l := logger{slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	msg := "session retired"
	if n := testing.AllocsPerRun(100, func() { l.debug(msg) }); n != 0 {
		t.Fatalf("a debug message at info level: %v allocations, want 0", n)
	}
}
