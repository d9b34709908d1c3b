package mcpool_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// stallingLogs is a debug-level handler that blocks the first record whose
// message contains match until release is closed.
type stallingLogs struct {
	match   string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (h *stallingLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *stallingLogs) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.once.Do(func() {
			close(h.entered)
			<-h.release
		})
	}
	return nil
}
func (h *stallingLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stallingLogs) WithGroup(string) slog.Handler      { return h }

// The pool logs outside its lock: a log handler stalled on "session
// retired" (written when a session past MaxSessionLifetime is retired) does not
// stall Acquire.
func TestSlowLogHandlerDoesNotStallAcquire(t *testing.T) {
	logs := &stallingLogs{match: "session retired", entered: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(logs.release) }) }
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxSessionLifetime: 50 * time.Millisecond, Logger: slog.New(logs)})
	defer unblock() // before newPool's cleanup closes the pool
	ctx := context.Background()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	select { // the session expires, retires and its log stalls
	case <-logs.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no session was retired")
	}
	done := make(chan error, 1)
	go func() {
		l, err := p.Acquire(ctx)
		if err == nil {
			l.Release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire while a log handler stalls: %v", err)
		}
	case <-time.After(30 * time.Second):
		unblock()
		<-done
		t.Fatal("Acquire stalled behind a blocked log handler")
	}
}
