package mcpool_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// Start's error for a permanent failure is what its doc and the README say:
// an *UnavailableError (the breaker opened) that unwraps to the
// *ConnectError, with the mcpool: prefix once.
func TestStartPermanentErrorIsUnavailableWrappingConnectError(t *testing.T) {
	p := newPool(t, mcpool.Config{Command: &mcpool.Command{Path: "/nonexistent/mcp-server"},
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Start(ctx)
	var ue *mcpool.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, mcpool.ErrServerUnavailable) {
		t.Fatalf("Start: %T %v; want an *UnavailableError matching ErrServerUnavailable", err, err)
	}
	var ce *mcpool.ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, mcpool.ErrConnectFailed) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Start: %v; want it to unwrap to the *ConnectError of the missing executable", err)
	}
	if n := strings.Count(err.Error(), "mcpool:"); n != 1 {
		t.Fatalf("%q says mcpool: %d times", err, n)
	}
}
