// Package demoserver is the MCP server embedded in the mcpool command and
// used as a real peer by the tests: a go-sdk server with a few tools.
package demoserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options tune the server for tests. The zero value is the demo server.
type Options struct {
	// PageSize is the server's list page size; 0 means the SDK default.
	PageSize int
	// OnCall, if set, runs when a tool call starts; the func it returns
	// runs when the call ends. Tests count concurrent calls per session
	// with it.
	OnCall func(ss *mcp.ServerSession, tool string) (done func())
	// SideEffects, if set, adds a fourth tool, increment, which has a side
	// effect and no annotations (neither read-only nor idempotent, so a
	// client must not run it twice on its own). Each execution writes its
	// id argument and a newline to SideEffects in one Write, waits ms
	// milliseconds (or until cancelled), then returns the id. Tests count
	// executions, and duplicates, from what was written.
	SideEffects io.Writer
	// Serial makes the server handle one request at a time per session, as
	// a single-threaded server (a Python server on one core, say) does:
	// requests on one session queue behind each other, while different
	// sessions still run in parallel.
	Serial bool
	// Shutdown, if set, cancels every tool call in progress, and every later
	// one, once it is done: a server that is shutting down does not wait for
	// a long sleep to finish. Nil means calls end only when they are done or
	// the client cancels them.
	Shutdown context.Context
}

// IncrementArgs are the arguments of the increment tool.
type IncrementArgs struct {
	ID string `json:"id" jsonschema:"the caller's id for this execution"`
	MS int    `json:"ms,omitempty" jsonschema:"how long to wait after the side effect before answering, in milliseconds"`
}

// EchoArgs are the arguments of the echo tool.
type EchoArgs struct {
	Message string `json:"message" jsonschema:"the text to send back"`
}

// SleepArgs are the arguments of the sleep tool.
type SleepArgs struct {
	MS int `json:"ms" jsonschema:"how long to sleep, in milliseconds"`
}

// StructuredOut is the output of the structured tool.
type StructuredOut struct {
	Message string    `json:"message"`
	Length  int       `json:"length"`
	At      time.Time `json:"at"`
}

// New returns a demo server with the tools echo, sleep and structured (and
// increment when opts.SideEffects is set).
func New(opts Options) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpool-demo", Version: "1.0.0"},
		&mcp.ServerOptions{PageSize: opts.PageSize})
	if opts.Serial {
		s.AddReceivingMiddleware(serialize())
	}
	if opts.Shutdown != nil {
		// Added last, so it runs first: a call queued behind a serial
		// session's lock is cancelled too.
		s.AddReceivingMiddleware(cancelOn(opts.Shutdown))
	}
	hook := func(req *mcp.CallToolRequest, name string) func() {
		if opts.OnCall == nil {
			return func() {}
		}
		return opts.OnCall(req.Session, name)
	}
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns its message.", Annotations: readOnly},
		func(ctx context.Context, req *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, any, error) {
			defer hook(req, "echo")()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sleep", Description: "Sleeps for ms milliseconds, or until cancelled.", Annotations: readOnly},
		func(ctx context.Context, req *mcp.CallToolRequest, in SleepArgs) (*mcp.CallToolResult, any, error) {
			defer hook(req, "sleep")()
			t := time.NewTimer(time.Duration(in.MS) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("slept %dms", in.MS)}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "structured", Description: "Returns its message as structured content.", Annotations: readOnly},
		func(ctx context.Context, req *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, StructuredOut, error) {
			defer hook(req, "structured")()
			return nil, StructuredOut{Message: in.Message, Length: len(in.Message), At: time.Now().UTC()}, nil
		})
	if opts.SideEffects != nil {
		var mu sync.Mutex
		mcp.AddTool(s, &mcp.Tool{Name: "increment", Description: "Records one execution (a side effect) and returns its id."},
			func(ctx context.Context, req *mcp.CallToolRequest, in IncrementArgs) (*mcp.CallToolResult, any, error) {
				defer hook(req, "increment")()
				mu.Lock()
				_, err := io.WriteString(opts.SideEffects, in.ID+"\n")
				mu.Unlock()
				if err != nil {
					return nil, nil, err
				}
				t := time.NewTimer(time.Duration(in.MS) * time.Millisecond)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.ID}}}, nil, nil
			})
	}
	return s
}

// Handler serves s over streamable HTTP. With stateless set it runs the
// SDK's stateless mode (no Mcp-Session-Id).
func Handler(s *mcp.Server, stateless bool, sessionTimeout time.Duration) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Stateless: stateless, SessionTimeout: sessionTimeout})
}

// Starting wraps h as a server that is still starting: every request is
// answered 503 Service Unavailable until up is called, then served by h.
// up is safe to call from any goroutine, more than once.
func Starting(h http.Handler) (starting http.Handler, up func()) {
	var ready atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}), func() { ready.Store(true) }
}

// serialize returns middleware that runs one request at a time per session.
func serialize() mcp.Middleware {
	var mu sync.Mutex
	locks := map[mcp.Session]*sync.Mutex{}
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if _, ok := req.(*mcp.CallToolRequest); !ok {
				return next(ctx, method, req)
			}
			ss := req.GetSession()
			mu.Lock()
			l := locks[ss]
			if l == nil {
				l = &sync.Mutex{}
				locks[ss] = l
			}
			mu.Unlock()
			l.Lock()
			defer l.Unlock()
			return next(ctx, method, req)
		}
	}
}

// cancelOn returns middleware that cancels tool calls when shutdown is done.
// The SDK detaches request handlers from the connection's context, so
// without it a server cannot end a call in progress on its own.
func cancelOn(shutdown context.Context) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if _, ok := req.(*mcp.CallToolRequest); !ok {
				return next(ctx, method, req)
			}
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			stop := context.AfterFunc(shutdown, func() { cancel(errors.New("the server is shutting down")) })
			defer stop()
			return next(ctx, method, req)
		}
	}
}
