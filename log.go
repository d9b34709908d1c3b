package mcpool

import (
	"context"
	"log/slog"
)

// logger wraps the configured slog.Logger. Messages never carry credentials:
// callers pass targets through redactURL and never log headers.
type logger struct{ l *slog.Logger }

func (l logger) debug(msg string, args ...any) {
	l.l.Log(context.Background(), slog.LevelDebug, "mcpool: "+msg, args...)
}

func (l logger) warn(msg string, args ...any) {
	l.l.Log(context.Background(), slog.LevelWarn, "mcpool: "+msg, args...)
}
