package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	stdiotransport "github.com/mcpool/mcpool/internal/stdio"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// demoPath is where the demo server answers MCP over HTTP.
const demoPath = "/mcp"

// shutdownTimeout bounds how long a stopping HTTP server lets requests in
// flight finish.
const shutdownTimeout = 5 * time.Second

func runDemoServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo-server")
	addr := fs.String("http", "127.0.0.1:8080", "serve streamable HTTP on this address, at path "+demoPath)
	stdio := fs.Bool("stdio", false, "serve on standard input and output instead of HTTP. SIGINT or SIGTERM\n"+
		"stops the server in either mode, cancelling the calls in progress")
	serial := fs.Bool("serial", false, "handle one tool call at a time per session, like a single-threaded server")
	verbose := fs.Bool("verbose", false, "log each tool call's start and end to stderr")
	procs := fs.Int("gomaxprocs", 0, "run Go code on at most this many cores (GOMAXPROCS); 0 leaves the runtime's\n"+
		"default. With --cpu-per-call, 1 models a server that handles calls concurrently\n"+
		"on one core (a Python asyncio server, say)")
	cpuPerCall := fs.Duration("cpu-per-call", 0, "burn this much CPU time (measured on the thread, not the clock) at the\n"+
		"start of every tool call, as a server that computes something per call does")
	rest, err := parseFlags(fs, args, "demo-server [--http ADDR | --stdio] [--serial] [--gomaxprocs N] [--cpu-per-call D] [--verbose]", stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	httpSet := false
	fs.Visit(func(f *flag.Flag) { httpSet = httpSet || f.Name == "http" })
	if *stdio && httpSet {
		return usageErrorf("give --http or --stdio, not both")
	}
	if *procs < 0 || *cpuPerCall < 0 {
		return usageErrorf("--gomaxprocs and --cpu-per-call must not be negative")
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	// Calls in progress are cancelled when the command is stopped: the
	// SDK's server would otherwise wait for them before closing a session.
	opts := demoserver.Options{Serial: *serial, Shutdown: ctx}
	if *verbose {
		opts.OnCall = logCalls(stderr)
	}
	if d := *cpuPerCall; d > 0 {
		next := opts.OnCall
		opts.OnCall = func(ss *mcp.ServerSession, tool string) func() {
			done := func() {}
			if next != nil {
				done = next(ss, tool)
			}
			burnCPU(d)
			return done
		}
	}
	said := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(said)
		fmt.Fprintf(stderr, "mcpool: demo-server: %s: shutting down, cancelling calls in progress\n", stopReason(ctx))
	})
	defer func() {
		// The process exits when this returns: a message under way is
		// finished first.
		if !stop() {
			<-said
		}
	}()
	if *stdio {
		err := demoserver.New(opts).Run(ctx, stdiotransport.Transport())
		if ctx.Err() != nil {
			return nil // stopped by a signal, as asked
		}
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "serving MCP on http://%s%s\n", ln.Addr(), demoPath)
	return serveHTTP(ctx, ln, opts, log.New(stderr, "mcpool: demo-server: ", 0))
}

// serveHTTP serves the demo server on ln until ctx ends, then shuts down:
// tool calls in progress are cancelled if opts.Shutdown is ctx (as the
// commands set it), and other requests in flight get shutdownTimeout to
// finish.
func serveHTTP(ctx context.Context, ln net.Listener, opts demoserver.Options, errorLog *log.Logger) error {
	demo := demoserver.New(opts)
	mux := http.NewServeMux()
	mux.Handle(demoPath, demoserver.Handler(demo, false, 0))
	// Requests run under a context that Shutdown cancels: a client's
	// standalone SSE stream (a GET that never ends by itself) would
	// otherwise hold Shutdown until its deadline.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           mux,
		ErrorLog:          errorLog,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(cancelBase)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Past the deadline: drop what is left rather than hang.
		err = errors.Join(err, srv.Close())
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	// Sessions whose clients never said goodbye (no DELETE) would keep
	// their goroutines for as long as the process lives.
	for ss := range demo.Sessions() {
		ss.Close()
	}
	return err
}

// startEmbedded serves the demo server on a loopback port chosen by the
// kernel and returns its URL and a func that stops it.
func startEmbedded() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("starting the embedded demo server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Its clients are ours and closed before stop; nothing to report.
		_ = serveHTTP(ctx, ln, demoserver.Options{Shutdown: ctx}, log.New(io.Discard, "", 0))
	}()
	stop = func() {
		cancel()
		<-done
	}
	return "http://" + ln.Addr().String() + demoPath, stop, nil
}

// logCalls returns a demoserver.Options.OnCall that writes one line when a
// tool call starts and one when it ends.
func logCalls(stderr io.Writer) func(*mcp.ServerSession, string) func() {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "mcpool: demo-server: "+format+"\n", a...)
	}
	return func(_ *mcp.ServerSession, tool string) func() {
		start := time.Now()
		say("call %s: started", tool)
		return func() { say("call %s: ended after %v", tool, time.Since(start).Round(time.Millisecond)) }
	}
}
