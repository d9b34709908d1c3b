package mcpool

import (
	"context"
	"log/slog"
)

// logger wraps the configured slog.Logger. Messages never carry credentials:
// callers pass targets through redactURL and never log headers.
type logger struct{ l *slog.Logger }

// The level is checked first, so that a message that will not be logged
// costs no allocation for its prefix.
func (l logger) debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }

func (l logger) info(msg string, args ...any) { l.log(slog.LevelInfo, msg, args) }

func (l logger) warn(msg string, args ...any) { l.log(slog.LevelWarn, msg, args) }

func (l logger) log(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !l.l.Enabled(ctx, level) {
		return
	}
	l.l.Log(ctx, level, "mcpool: "+msg, args...)
}
