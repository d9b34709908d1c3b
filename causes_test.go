package mcpool_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// A connect cut short by ConnectTimeout says so and matches
// context.DeadlineExceeded, not context.Canceled.
func TestConnectTimeoutCause(t *testing.T) {
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that net/http notices the client leaving
		select {                    // never answers
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(stop) })
	p := newPool(t, mcpool.Config{URL: ts.URL, ConnectTimeout: 200 * time.Millisecond, FailureThreshold: -1})
	err := p.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded against a server that never answers")
	}
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, context.DeadlineExceeded)
	if errors.Is(err, context.Canceled) {
		t.Errorf("a timed-out connect matches context.Canceled: %v", err)
	}
	if !strings.Contains(err.Error(), "ConnectTimeout (200ms") {
		t.Errorf("the error does not name ConnectTimeout and its value: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the exec package's copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A stdio server that exits during connect: the ConnectError carries its
// exit status and the end of its stderr, which still reaches
// Command.Stderr.
func TestConnectStdioExitCause(t *testing.T) {
	var long strings.Builder
	for range 300 {
		long.WriteString("echo 'noise noise noise noise noise' >&2; ")
	}
	cases := []struct {
		name   string
		path   string
		args   []string
		code   int
		stderr string // the kept tail must end with this
	}{
		{"false", "false", nil, 1, ""},
		{"exit 3", "sh", []string{"-c", "echo boom >&2; exit 3"}, 3, "boom"},
		{"long stderr", "sh", []string{"-c", long.String() + "echo last words >&2; exit 4"}, 4, "noise\nlast words"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr syncBuffer
			p := newPool(t, mcpool.Config{Command: &mcpool.Command{Path: c.path, Args: c.args, Stderr: &stderr},
				FailureThreshold: -1, BackoffInitial: time.Second, BackoffMax: time.Second})
			err := p.Start(context.Background())
			var ce *mcpool.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConnectError, got %T: %v", err, err)
			}
			if ce.Exit == nil || ce.Exit.ExitCode() != c.code {
				t.Fatalf("Exit = %v, want exit status %d: %v", ce.Exit, c.code, err)
			}
			if !strings.Contains(err.Error(), "exit status") {
				t.Errorf("the message does not give the exit status: %v", err)
			}
			if !strings.HasSuffix(ce.Stderr, c.stderr) || len(ce.Stderr) > 4096 {
				t.Fatalf("Stderr = %d bytes ending %q, want at most 4096 ending %q", len(ce.Stderr), tail(ce.Stderr, 40), c.stderr)
			}
			if c.stderr != "" && !strings.Contains(err.Error(), c.stderr) {
				t.Errorf("the message does not quote stderr: %v", err)
			}
			if c.name == "long stderr" && !strings.HasPrefix(ce.Stderr, "noise") {
				t.Errorf("a cut stderr tail should start at a line: %q", ce.Stderr[:40])
			}
			if !strings.HasSuffix(strings.TrimSpace(stderr.String()), c.stderr) {
				t.Errorf("Command.Stderr got %q", tail(stderr.String(), 40))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
