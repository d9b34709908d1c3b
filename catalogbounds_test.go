package mcpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// endlessLister returns a go-sdk server whose tools/list never ends: every
// page has one tool and a next cursor, from next(page number). It counts
// the pages asked for. If block is set, each page waits for its request to
// be cancelled (and records that) or for release.
type endlessLister struct {
	pages     atomic.Int64
	cancelled atomic.Int64
	block     bool
	release   chan struct{}
}

func (e *endlessLister) server(next func(n int64) string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "endless", Version: "1"}, nil)
	srv.AddReceivingMiddleware(func(h mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "tools/list" {
				return h(ctx, method, req)
			}
			n := e.pages.Add(1)
			if e.block {
				select {
				case <-ctx.Done():
					e.cancelled.Add(1)
					return nil, ctx.Err()
				case <-e.release:
				}
			}
			tool := &mcp.Tool{Name: fmt.Sprintf("t%d", n), InputSchema: map[string]any{"type": "object"}}
			return &mcp.ListToolsResult{Tools: []*mcp.Tool{tool}, NextCursor: next(n)}, nil
		}
	})
	return srv
}

// A server that always returns a new next cursor: the listing stops after
// MaxListPages pages with a typed error.
func TestListPageLimit(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxListPages: 5})
	_, err := p.ListTools(context.Background())
	var le *mcpool.ListTooLongError
	if !errors.As(err, &le) || le.Pages != 5 || le.Kind != "tools" || le.RepeatedCursor != "" {
		t.Fatalf("want a ListTooLongError after 5 pages, got %T: %v", err, err)
	}
	mustIs(t, err, mcpool.ErrListTooLong)
	if got := e.pages.Load(); got != 5 {
		t.Fatalf("the server was asked for %d pages, want 5", got)
	}
	// The session answered well: it is not blamed.
	if st := p.Stats(); st.Deaths != 0 || st.Sessions != 1 {
		t.Fatalf("stats after a runaway listing: %+v", st)
	}
}

// A server that sends the same cursor again: the listing stops at once.
func TestListRepeatedCursor(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(int64) string { return "same" })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt})
	_, err := p.ListTools(context.Background())
	var le *mcpool.ListTooLongError
	if !errors.As(err, &le) || le.RepeatedCursor != "same" || le.Pages != 2 {
		t.Fatalf("want a ListTooLongError for the repeated cursor after 2 pages, got %T: %v", err, err)
	}
}

// The default limit holds too (the fetch does not run on for ever).
func TestListDefaultPageLimit(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt})
	_, err := p.ListTools(context.Background())
	mustIs(t, err, mcpool.ErrListTooLong)
	if got := e.pages.Load(); got != mcpool.DefaultMaxListPages {
		t.Fatalf("pages %d, want %d", got, mcpool.DefaultMaxListPages)
	}
}

// A shared fetch whose only caller gave up stops: the page it was waiting
// for is cancelled, and no further page is asked for.
func TestListAbandonedFetchStops(t *testing.T) {
	e := &endlessLister{block: true, release: make(chan struct{})}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxListPages: 1 << 30})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := p.ListTools(ctx); errc <- err }()
	eventually(t, "the first page asked for", func() bool { return e.pages.Load() == 1 })
	cancel()
	mustIs(t, <-errc, context.Canceled)
	eventually(t, "the abandoned fetch cancelling its page", func() bool { return e.cancelled.Load() == 1 })
	if got := e.pages.Load(); got != 1 {
		t.Fatalf("the stopped fetch asked for %d pages, want 1", got)
	}
	close(e.release)
}
