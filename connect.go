package mcpool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

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
	// raw sends tools/call itself under WithRawResult; nil when the
	// transport does not allow it (rawcall.go).
	raw *rawCaller
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
	opts := applyClientHandlers(&mcp.ClientOptions{
		Logger: s.Logger,
		// No roots: a client that advertises roots and never answers roots/list
		// leaves some servers (server-everything over stdio) running after
		// stdin closes.
		Capabilities:                &mcp.ClientCapabilities{},
		ToolListChangedHandler:      func(context.Context, *mcp.ToolListChangedRequest) { onListChanged("tools") },
		PromptListChangedHandler:    func(context.Context, *mcp.PromptListChangedRequest) { onListChanged("prompts") },
		ResourceListChangedHandler:  func(context.Context, *mcp.ResourceListChangedRequest) { onListChanged("resources") },
		ProgressNotificationHandler: s.OnProgress,
	}, s.ClientHandlers)
	d.client = mcp.NewClient(&mcp.Implementation{Name: s.ClientName, Version: s.ClientVersion}, opts)
	relayElicitation(d.client, s.ClientHandlers) // clienthandlers.go
	httpClient := s.HTTPClient
	if httpClient == nil && (s.URL != "" || s.SSEURL != "") {
		httpClient = newHTTPClient(s.idleConns())
		d.ownedHTTP = httpClient
	}
	if httpClient != nil {
		httpClient = withAnswerCheck(withAuth(httpClient, s))
	}
	d.raw = newRawCaller(s, httpClient, opts) // rawcall.go
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
			return &stdioTransport{cmd: cmd, term: term, head: &outputHead{}, exited: make(chan struct{})}, nil
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
	stdio  *stdioTransport // nil unless a stdio session
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
	track := &connectTrack{}
	ctx = context.WithValue(ctx, connectKey{}, track)
	var stdio *stdioTransport
	var head *outputHead
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
		if !timedOut {
			if merr := misconfigured(err, track, head); merr != nil {
				err = merr
			}
		}
		ce := &ConnectError{Target: d.target, Cause: err}
		if stdio != nil && !timedOut {
			ce.Exit, ce.Stderr = stdioExit(stdio)
		}
		ce.Permanent = isPermanent(ce)
		return conn{}, ce
	}
	t, err := d.transport(ctx)
	if err == nil && t == nil {
		err = errors.New("NewTransport returned a nil transport")
	}
	if err != nil {
		return fail(err)
	}
	if st, ok := t.(*stdioTransport); ok {
		stdio, head = st, st.head
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
		// Its cancel may not have run yet, leaving ctx's cause unset.
		_ = r.cs.Close()
		stdio = nil
		cause := context.Cause(ctx)
		if cause == nil {
			cause = errConnectTimeout
			if parent.Err() != nil {
				cause = context.Cause(parent)
			}
		}
		return fail(cause)
	}
	return conn{cs: r.cs, cancel: cancel, stdio: stdio}, nil
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

// stdioExit reports how a stdio child exited, and the tail of its stderr.
// The SDK closes a failed connection (and so waits for the child) on its
// own goroutine: stdioExit waits for that, long enough for the closing
// sequence (stdin closed, SIGTERM, SIGKILL); the state is nil if it has
// not ended by then.
func stdioExit(t *stdioTransport) (*os.ProcessState, string) {
	return stdioExitWithin(t, 3*t.term+time.Second)
}

// stdioExitWithin is stdioExit waiting at most d for the child.
func stdioExitWithin(t *stdioTransport, d time.Duration) (*os.ProcessState, string) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var state *os.ProcessState
	select {
	case <-t.exited:
		state = t.cmd.ProcessState
	case <-timer.C:
	}
	var tail string
	if w, ok := t.cmd.Stderr.(*stderrTail); ok {
		tail = w.String()
	}
	return state, tail
}

// frameLimit is the largest message the pool reads from a server: the
// SDK's limit for one stdio line (mcp.DefaultMaxLineLength) and one
// server-sent event (mcp.DefaultMaxEventSize), 16 MB. The pool applies it to
// plain JSON answers over HTTP too, which the SDK reads without a limit.
const frameLimit = mcp.DefaultMaxLineLength

// stdioTransport starts a stdio server and speaks MCP over its stdin and
// stdout, as mcp.CommandTransport does (closing: stdin closed, then SIGTERM
// after term, then SIGKILL), and keeps the first bytes the child writes on
// stdout so that a connect that fails on them can quote them.
type stdioTransport struct {
	cmd  *exec.Cmd
	term time.Duration
	head *outputHead
	// exited is closed once the child has been waited for.
	exited chan struct{}
}

// Connect starts the child.
func (t *stdioTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	stdout, err := t.cmd.StdoutPipe()
	if err == nil {
		var stdin io.WriteCloser
		if stdin, err = t.cmd.StdinPipe(); err == nil {
			if err = t.cmd.Start(); err == nil {
				return t.connect(ctx, stdout, stdin)
			}
		}
	}
	close(t.exited) // never started: nothing to wait for
	return nil, err
}

func (t *stdioTransport) connect(ctx context.Context, stdout io.Reader, stdin io.WriteCloser) (mcp.Connection, error) {
	t.head.r = stdout
	// The connection is closed by closing stdin, not stdout: a server may
	// still write while it shuts down.
	return (&mcp.IOTransport{Reader: io.NopCloser(t.head), Writer: &childStdin{cmd: t.cmd, stdin: stdin, term: t.term, exited: t.exited}}).Connect(ctx)
}

// childStdin is the child's stdin; closing it ends the child as the MCP
// spec's stdio shutdown says: close stdin, wait, SIGTERM, wait, SIGKILL.
type childStdin struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	term   time.Duration
	exited chan struct{}
}

// Write writes to the child's stdin.
func (c *childStdin) Write(b []byte) (int, error) { return c.stdin.Write(b) }

// Close closes stdin and waits for the child, signalling it if it lingers.
func (c *childStdin) Close() error {
	if err := c.stdin.Close(); err != nil {
		return fmt.Errorf("closing stdin: %v", err)
	}
	w := newChildWaiter(c.cmd, c.exited) // childwait.go
	if w.within(c.term) {
		return w.reap()
	}
	if c.cmd.Process.Signal(syscall.SIGTERM) == nil && w.within(c.term) {
		return w.reap()
	}
	if err := c.cmd.Process.Kill(); err != nil {
		go w.reap() // whenever it ends
		return err
	}
	if w.within(c.term) {
		return w.reap()
	}
	go w.reap()
	return errors.New("unresponsive subprocess")
}

// outputHeadSize is how much of a stdio server's first output the pool
// keeps to explain a connect that failed on it.
const outputHeadSize = 4 << 10

// outputHead reads a stdio server's stdout and keeps its first
// outputHeadSize bytes. It also holds each line back until it is complete,
// and fails the read once a line passes frameLimit: the SDK's decoder would
// scan the whole 16 MB first (seconds under load) before giving up on it.
type outputHead struct {
	r   io.Reader
	mu  sync.Mutex
	buf []byte
	// pending is what was read of the current line; ready is complete
	// lines not yet handed to the decoder.
	pending, ready []byte
	chunk          []byte
	err            error
}

// Read hands complete lines to the decoder.
func (h *outputHead) Read(b []byte) (int, error) {
	for len(h.ready) == 0 {
		if h.err != nil {
			if len(h.pending) > 0 { // the last line, unterminated
				h.ready, h.pending = h.pending, nil
				break
			}
			return 0, h.err
		}
		if h.chunk == nil {
			h.chunk = make([]byte, 64<<10)
		}
		n, err := h.r.Read(h.chunk)
		h.keep(h.chunk[:n])
		h.err = err
		data := h.chunk[:n]
		if i := lastNewline(data); i >= 0 {
			h.ready = append(h.pending, data[:i+1]...)
			h.pending = append([]byte(nil), data[i+1:]...)
		} else {
			if len(h.pending) >= 1<<20 && cap(h.pending)-len(h.pending) < len(data) {
				// A long line: grow once to the limit rather than by
				// a quarter at a time (copying it over and over).
				h.pending = append(make([]byte, 0, frameLimit+len(h.chunk)), h.pending...)
			}
			h.pending = append(h.pending, data...)
		}
		if len(h.pending) > frameLimit {
			h.pending, h.err = nil, tooLarge(frameLimit+1)
			// Nothing more can be read in step: closing stdout ends a
			// child blocked writing the rest (EPIPE) rather than leave
			// it to SIGTERM and SIGKILL after TerminateTimeout each.
			if c, ok := h.r.(io.Closer); ok {
				c.Close()
			}
			if len(h.ready) == 0 {
				return 0, h.err
			}
		}
	}
	n := copy(b, h.ready)
	h.ready = h.ready[n:]
	if len(h.ready) == 0 {
		h.ready = nil
	}
	return n, nil
}

// lastNewline is bytes.LastIndexByte(b, '\n') by way of bytes.IndexByte,
// which is vectorised: a long line is searched at memory speed.
func lastNewline(b []byte) int {
	last := -1
	for {
		i := bytes.IndexByte(b[last+1:], '\n')
		if i < 0 {
			return last
		}
		last += i + 1
	}
}

// keep appends what fits of b to the kept head.
func (h *outputHead) keep(b []byte) {
	h.mu.Lock()
	if room := outputHeadSize - len(h.buf); room > 0 {
		h.buf = append(h.buf, b[:min(len(b), room)]...)
	}
	h.mu.Unlock()
}

// offending returns the start of the first line of the kept output that is
// not a JSON value: what the server wrote instead of JSON-RPC.
func (h *outputHead) offending() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	rest := h.buf
	for len(rest) > 0 {
		line, more, found := bytes.Cut(rest, []byte{'\n'})
		if !found && len(h.buf) >= outputHeadSize {
			return line // a line longer than what was kept: quote its start
		}
		if len(bytes.TrimSpace(line)) > 0 && !isJSONRPC(line) {
			return line
		}
		rest = more
	}
	return nil
}

// isJSONRPC reports whether line is a JSON object with "jsonrpc": "2.0",
// or an array (a batch).
func isJSONRPC(line []byte) bool {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '[' {
		return json.Valid(line)
	}
	var m struct {
		Version string `json:"jsonrpc"`
	}
	return json.Unmarshal(line, &m) == nil && m.Version == "2.0"
}

// connectTrack rides in a connect's context down to the pool's HTTP
// transport, which records there what the server answered when that
// answer was not MCP: the SDK's errors do not keep it.
type connectTrack struct {
	mu sync.Mutex
	// answer describes the first answer that was not MCP: its status,
	// content type and first bytes.
	answer string
	status int
	// redirects is the redirect chain of a request that looped.
	redirects []string
}

type connectKey struct{}

func connectTrackOf(ctx context.Context) *connectTrack {
	t, _ := ctx.Value(connectKey{}).(*connectTrack)
	return t
}

func (t *connectTrack) note(status int, answer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.answer == "" {
		t.status, t.answer = status, answer
	}
}

func (t *connectTrack) seen() (status int, answer string, redirects []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.answer, t.redirects
}

// maxRedirects is how many redirects one request may follow, as net/http's
// default.
const maxRedirects = 10

// withAnswerCheck returns c with a transport that records answers that are
// not MCP during connects and bounds answers to calls by frameLimit, and a
// redirect policy that stops a redirect loop at once and records its chain.
// c is a copy the pool owns (see withAuth).
func withAnswerCheck(c *http.Client) *http.Client {
	c.Transport = &answerTransport{base: c.Transport}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		loop := len(via) >= maxRedirects
		for _, v := range via {
			if v.URL.String() == req.URL.String() {
				loop = true
			}
		}
		if loop {
			chain := make([]string, 0, len(via)+1)
			for _, v := range via {
				chain = append(chain, redactURL(v.URL.String()))
			}
			chain = append(chain, redactURL(req.URL.String()))
			if t := connectTrackOf(req.Context()); t != nil {
				t.mu.Lock()
				if t.redirects == nil {
					t.redirects = chain
				}
				t.mu.Unlock()
			}
			return &redirectLoopError{chain: chain}
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return c
}

// redirectLoopError stops a request whose redirects loop.
type redirectLoopError struct{ chain []string }

// Error names the chain.
func (e *redirectLoopError) Error() string {
	return "redirect loop: " + strings.Join(e.chain, " -> ")
}

// answerTransport is the outermost transport of the pool's HTTP client.
type answerTransport struct{ base http.RoundTripper }

// answerHead is how many bytes of an answer that is not MCP an error quotes.
const answerHead = 100

// RoundTrip sends req. During a connect it records an answer that is not
// MCP (a content type other than JSON or an event stream, 404, 401, 403);
// for a call it bounds the answer by frameLimit.
func (t *answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if ct := connectTrackOf(req.Context()); ct != nil && req.Method == http.MethodPost && !sessionEnded(req, resp) {
		if what := notMCP(resp); what != "" {
			ct.note(resp.StatusCode, what)
		}
	}
	if tr := trackOf(req.Context()); tr != nil && resp.Body != nil {
		if resp.ContentLength > frameLimit {
			resp.Body.Close()
			tr.overLimit(resp.ContentLength)
			return nil, tooLarge(resp.ContentLength)
		}
		resp.Body = &limitedBody{rc: resp.Body, left: frameLimit, tr: tr}
	}
	return resp, nil
}

// sessionEnded reports a 404 to a request of a session
// (Mcp-Session-Id): the server ended that session, which it may do at any
// time (MCP spec 2025-11-25, "Session Management"), even between
// initialize and notifications/initialized when it expires sessions
// quickly. That is not a wrong URL: the connect is retried.
func sessionEnded(req *http.Request, resp *http.Response) bool {
	return resp.StatusCode == http.StatusNotFound && req.Header.Get("Mcp-Session-Id") != ""
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base.
func (t *answerTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// notMCP describes resp when it cannot be an MCP answer to a POST: a 2xx
// with a body that is neither JSON nor an event stream, or 404, 401, 403.
// It reads at most answerHead bytes of the body and puts them back.
func notMCP(resp *http.Response) string {
	ctype := resp.Header.Get("Content-Type")
	media := strings.ToLower(strings.TrimSpace(strings.Split(ctype, ";")[0]))
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent &&
		media != "application/json" && media != "text/event-stream":
	default:
		return ""
	}
	empty := resp.StatusCode < 300 // a 2xx without a body is no answer to judge
	what := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if ctype != "" {
		what += fmt.Sprintf(" with Content-Type %q", ctype)
	} else {
		what += " with no Content-Type"
	}
	if resp.Body != nil {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, answerHead+1))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		if len(head) > 0 {
			what += ", body begins " + quoteHead(head)
			empty = false
		}
	}
	if empty {
		// Some servers answer a notification with an empty 200: not a
		// sign of anything.
		return ""
	}
	return what
}

// quoteHead quotes at most answerHead bytes of b, escaped, with "…" when cut.
func quoteHead(b []byte) string {
	if len(b) <= answerHead {
		return strconv.Quote(string(b))
	}
	cut := b[:answerHead]
	for len(cut) > 0 && !utf8.Valid(cut) {
		cut = cut[:len(cut)-1]
	}
	return strconv.Quote(string(cut)) + "…"
}

// limitedBody is the body of an answer to a call: past frameLimit bytes
// it fails the call (see callTrack.overLimit) instead of reading on.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	tr   *callTrack
}

// Read reads on until frameLimit is passed.
func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, tooLarge(frameLimit + 1)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.tr.overLimit(frameLimit + 1)
		return 0, tooLarge(frameLimit + 1)
	}
	return n, err
}

// Close closes the body.
func (b *limitedBody) Close() error { return b.rc.Close() }
