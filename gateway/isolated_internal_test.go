package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// A spare's pool logs its warnings at debug level while it warms, and as
// they are once it is warm: the client that takes it must see them.
func TestWarmingHandler(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level // the handler's
		warm  bool
		want  string // "" for nothing logged
	}{
		{"warming, info handler", slog.LevelInfo, false, ""},
		{"warming, debug handler", slog.LevelDebug, false, "level=DEBUG"},
		{"warm, info handler", slog.LevelInfo, true, "level=WARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			warm := new(atomic.Bool)
			warm.Store(tc.warm)
			base := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})
			log := slog.New(warmingHandler{base, warm}).With("server", "s")
			log.Warn("connect failed")
			got := buf.String()
			switch {
			case tc.want == "" && got != "":
				t.Errorf("logged %q, want nothing", got)
			case tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, "server=s")):
				t.Errorf("logged %q, want %s with the logger's attributes", got, tc.want)
			}
		})
	}
}
