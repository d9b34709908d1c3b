package mcpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is this module's version, sent as the default ClientVersion.
const Version = "0.1.0"

// dialer makes new sessions. It holds everything a connect needs and nothing
// that changes, so connects run without the pool's lock.
type dialer struct {
	client    *mcp.Client
	transport func(ctx context.Context) (mcp.Transport, error)
	target    string // for errors and logs; never holds credentials
	// ownedHTTP is the HTTP client the pool made itself and must tidy on Close.
	ownedHTTP *http.Client
	// credentials: the pool sends some (a token, an OAuth handler or an
	// Authorization header), so a 401 refused them rather than asked for them.
	credentials bool
	handlers    *ClientHandlers // for the log level asked after connect
}

// unauthorizedError is a 401 at connect. It matches ErrUnauthorized without
// repeating its "mcpool: " prefix inside a ConnectError's message.
type unauthorizedError struct {
	what  string
	cause error
}

// Error says what the 401 means for this pool, then the cause.
func (e *unauthorizedError) Error() string { return e.what + ": " + e.cause.Error() }

// Unwrap returns ErrUnauthorized and the cause.
func (e *unauthorizedError) Unwrap() []error { return []error{ErrUnauthorized, e.cause} }

func newDialer(s *settings, onListChanged func(kind string)) *dialer {
	d := &dialer{credentials: s.BearerToken != "" || s.Token != nil || s.OAuthHandler != nil || s.Headers.Get("Authorization") != "", handlers: s.ClientHandlers}
	d.client = mcp.NewClient(&mcp.Implementation{Name: s.ClientName, Version: s.ClientVersion}, applyClientHandlers(&mcp.ClientOptions{
		Logger: s.Logger,
		// No roots: a client that advertises roots and never answers roots/list
		// leaves some servers (server-everything over stdio) running after
		// stdin closes.
		Capabilities:                &mcp.ClientCapabilities{},
		ToolListChangedHandler:      func(context.Context, *mcp.ToolListChangedRequest) { onListChanged("tools") },
		PromptListChangedHandler:    func(context.Context, *mcp.PromptListChangedRequest) { onListChanged("prompts") },
		ResourceListChangedHandler:  func(context.Context, *mcp.ResourceListChangedRequest) { onListChanged("resources") },
		ProgressNotificationHandler: s.OnProgress,
	}, s.ClientHandlers))
	relayElicitation(d.client, s.ClientHandlers) // clienthandlers.go
	httpClient := s.HTTPClient
	if httpClient == nil && (s.URL != "" || s.SSEURL != "") {
		httpClient = newHTTPClient(s.MaxSessions * (s.MaxCallsPerSession + 1))
		d.ownedHTTP = httpClient
	}
	if httpClient != nil {
		httpClient = withAuth(httpClient, s)
	}
	switch {
	case s.URL != "":
		d.target = redactURL(s.URL)
		d.transport = func(context.Context) (mcp.Transport, error) {
			return &mcp.StreamableClientTransport{Endpoint: s.URL, HTTPClient: httpClient, OAuthHandler: s.OAuthHandler}, nil
		}
	case s.SSEURL != "":
		d.target = redactURL(s.SSEURL)
		d.transport = func(context.Context) (mcp.Transport, error) {
			return &mcp.SSEClientTransport{Endpoint: s.SSEURL, HTTPClient: httpClient}, nil
		}
	case s.Command != nil:
		c := *s.Command
		// Arguments can carry secrets; errors and logs name the program only.
		d.target = "stdio:" + c.Path
		term := orDefault(c.TerminateTimeout, DefaultStdioTerminate)
		d.transport = func(context.Context) (mcp.Transport, error) {
			cmd := exec.Command(c.Path, c.Args...)
			cmd.Env, cmd.Dir = c.Env, c.Dir
			// The tail of stderr explains a child that exits during connect;
			// what it writes still reaches Command.Stderr.
			cmd.Stderr = newStderrTail(c.Stderr)
			// A grandchild holding stderr open must not keep Wait (and so
			// the session's Close) from returning once the child is gone.
			cmd.WaitDelay = term
			return &mcp.CommandTransport{Command: cmd, TerminateDuration: term}, nil
		}
	default:
		d.target = "custom transport"
		d.transport = s.NewTransport
	}
	return d
}

// newHTTPClient returns a client whose transport keeps idle connections for
// every call that can be in flight: each call is its own POST, and
// net/http's default of 2 idle connections per host would churn the rest.
func newHTTPClient(idle int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idle
	t.MaxIdleConns = max(t.MaxIdleConns, idle)
	return &http.Client{Transport: t}
}

// conn is a connected session and the cancel func of the context its
// transport was connected with.
type conn struct {
	cs     *mcp.ClientSession
	cancel context.CancelFunc
}

// dial connects one session with the given protocol version ("" negotiates).
// ConnectTimeout bounds only the connect: the transport keeps its context
// for the session's life (SSE reads its stream on it; streamable HTTP its
// GET stream and DELETE), so that context is not cancelled on return.
//
// The connect itself runs in a goroutine that bg tracks: when initialize
// times out, Client.Connect closes the half-made session, which can take
// seconds (a stdio child that ignores stdin EOF waits out TerminateTimeout;
// a pending notifications/cancelled waits up to 5s), and ConnectTimeout must
// not wait for that. The goroutine finishes the teardown in the background.
func (d *dialer) dial(parent context.Context, version string, timeout time.Duration, bg *sync.WaitGroup) (conn, error) {
	ctx, cancelCause := context.WithCancelCause(context.WithoutCancel(parent))
	cancel := func() { cancelCause(nil) }
	stop := context.AfterFunc(parent, cancel)
	// The timer ends the connect with a cause, so that the error says which
	// setting ran out and matches context.DeadlineExceeded.
	timer := time.AfterFunc(timeout, func() { cancelCause(errConnectTimeout) })
	var stdio *exec.Cmd
	fail := func(err error) (conn, error) {
		timedOut := !timer.Stop() // read before cancel() below ends ctx anyway
		stop()
		cancel()
		if timedOut && parent.Err() == nil {
			err = timeoutErr(timeout, err)
		}
		// net/http's errors quote the URL, query included: an api_key
		// there must not reach errors or logs.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			uerr.URL = redactURL(uerr.URL)
		}
		if !errors.Is(err, ErrUnauthorized) && strings.HasSuffix(err.Error(), http.StatusText(http.StatusUnauthorized)) {
			what := "the server requires authorization (401): set Config.BearerToken, Token or OAuthHandler"
			if d.credentials {
				what = "the server refused the credentials (401): check BearerToken, Token, the Authorization header or the OAuth client"
			}
			err = &unauthorizedError{what: what, cause: err}
		}
		ce := &ConnectError{Target: d.target, Cause: err}
		if stdio != nil && !timedOut {
			ce.Exit, ce.Stderr = stdioExit(stdio)
		}
		return conn{}, ce
	}
	t, err := d.transport(ctx)
	if err == nil && t == nil {
		err = errors.New("NewTransport returned a nil transport")
	}
	if err != nil {
		return fail(err)
	}
	if ct, ok := t.(*mcp.CommandTransport); ok {
		stdio = ct.Command
	}
	type result struct {
		cs  *mcp.ClientSession
		err error
	}
	done := make(chan result, 1)
	bg.Go(func() {
		cs, err := d.client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: version})
		done <- result{cs, err}
	})
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Timed out or closing: leave the teardown to the goroutine.
		bg.Go(func() {
			if r := <-done; r.cs != nil {
				_ = r.cs.Close()
			}
		})
		stdio = nil // still being torn down: its state is not ours to read
		return fail(ctx.Err())
	}
	if r.err != nil {
		// Client.Connect closed the half-made session before returning, and
		// with it reaped a stdio child: its exit status is settled.
		return fail(r.err)
	}
	setLogLevel(ctx, r.cs, d.handlers) // clienthandlers.go
	if !timer.Stop() || !stop() {
		// The timeout or the pool's Close won the race with the connect.
		_ = r.cs.Close()
		stdio = nil
		return fail(context.Cause(ctx))
	}
	return conn{cs: r.cs, cancel: cancel}, nil
}

// errConnectTimeout is the cause a connect's context is cancelled with when
// ConnectTimeout passes.
var errConnectTimeout = fmt.Errorf("ConnectTimeout passed: %w", context.DeadlineExceeded)

// timeoutErr names ConnectTimeout in err and makes it match
// context.DeadlineExceeded; a bare context error (the SDK's view of the
// cancellation) is dropped as noise.
func timeoutErr(timeout time.Duration, err error) error {
	if err == nil || errors.Is(err, context.Canceled) && err.Error() == context.Canceled.Error() ||
		errors.Is(err, errConnectTimeout) {
		return fmt.Errorf("no answer within ConnectTimeout (%v; raise Config.ConnectTimeout if the server is slow to start): %w", timeout, context.DeadlineExceeded)
	}
	if errors.Is(err, context.Canceled) {
		// The SDK's error says "context canceled": keep its text, not its
		// identity, which would contradict the deadline.
		return fmt.Errorf("no answer within ConnectTimeout (%v; raise Config.ConnectTimeout if the server is slow to start): %w (%v)", timeout, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("no answer within ConnectTimeout (%v; raise Config.ConnectTimeout if the server is slow to start): %w: %w", timeout, context.DeadlineExceeded, err)
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// stderrTailSize bounds how much of a stdio server's stderr the pool keeps
// to explain a failed connect.
const stderrTailSize = 4 << 10

// stderrTail keeps the last stderrTailSize bytes a stdio server wrote to its
// stderr and passes everything on to the user's Command.Stderr, if any.
type stderrTail struct {
	next io.Writer
	mu   sync.Mutex
	buf  []byte
}

func newStderrTail(next io.Writer) *stderrTail { return &stderrTail{next: next} }

// Write keeps the tail of b and passes b on.
func (w *stderrTail) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, b...)
	if over := len(w.buf) - stderrTailSize; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	w.mu.Unlock()
	if w.next != nil {
		return w.next.Write(b)
	}
	return len(b), nil
}

// String returns the kept tail, from the first whole line when it was cut.
func (w *stderrTail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := string(w.buf)
	if len(w.buf) >= stderrTailSize {
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
	}
	return strings.TrimRight(s, "\r\n\t ")
}

// stdioExit reports how a stdio child that the SDK has already reaped
// exited, and the tail of its stderr. It must be called only once
// Client.Connect has returned (it closes, and so waits for, the child).
func stdioExit(cmd *exec.Cmd) (*os.ProcessState, string) {
	var tail string
	if w, ok := cmd.Stderr.(*stderrTail); ok {
		tail = w.String()
	}
	return cmd.ProcessState, tail
}
