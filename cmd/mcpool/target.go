package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// targetFlags name the server that bench, tools and call talk to.
type targetFlags struct {
	url            string
	sse            string
	stdio          string
	connectTimeout time.Duration
	verbose        bool
	auth           authFlags   // auth.go
	answers        answerFlags // elicit.go
	group          groupFlags  // --config, --server (config.go)
}

func (f *targetFlags) register(fs *flag.FlagSet) {
	fs.Var(nonEmpty{&f.url}, "url", "streamable HTTP endpoint `URL` of the server, e.g. http://127.0.0.1:8080/mcp")
	fs.Var(nonEmpty{&f.sse}, "sse", "legacy HTTP+SSE endpoint `URL` of the server")
	fs.Var(nonEmpty{&f.stdio}, "stdio", "`command` line that starts a stdio server, e.g. \"node server.js stdio\"")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "bound on one connect, handshake included")
	fs.BoolVar(&f.verbose, "verbose", false, "log pool events and pass a stdio server's stderr through to stderr")
	f.auth.register(fs)
	f.answers.register(fs)
	f.group.register(fs)
}

// nonEmpty is a string flag that refuses an empty value: without it,
// --url "$MCP_URL" with the variable unset would talk to the embedded demo
// server and print its plausible answers.
type nonEmpty struct{ p *string }

// String is the value, for flag's defaults.
func (n nonEmpty) String() string {
	if n.p == nil {
		return ""
	}
	return *n.p
}

// Set takes v, refusing an empty or blank one.
func (n nonEmpty) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty (an unset variable?)")
	}
	*n.p = v
	return nil
}

// target is a server to talk to: the base of every pool's Config and the
// transports of per-call sessions.
type target struct {
	cfg     mcpool.Config
	command []string // stdio: program and arguments
	stderr  io.Writer
	// stop shuts the embedded server down; nil for other targets.
	stop func()

	// Set by enableChaos (chaos.go). procs records the stdio processes
	// started; dial, if set, opens every HTTP connection (to the proxy);
	// cleanup runs on close, before stop.
	procs   *procRegistry
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	cleanup []func()
}

// open validates the flags and, when they name no server, starts the
// embedded demo server on loopback. Call close when done.
func (f *targetFlags) open(stderr io.Writer) (*target, error) {
	named := 0
	for _, v := range []string{f.url, f.sse, f.stdio} {
		if v != "" {
			named++
		}
	}
	if named > 1 {
		return nil, usageErrorf("give at most one of --url, --sse and --stdio")
	}
	if f.connectTimeout <= 0 {
		return nil, usageErrorf("--connect-timeout must be positive")
	}
	t := &target{stderr: io.Discard}
	t.cfg.ConnectTimeout = f.connectTimeout
	// Pool events would add lines to the one-line errors; they are for
	// those who ask.
	t.cfg.Logger = slog.New(slog.DiscardHandler)
	if f.verbose {
		t.cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		t.stderr = stderr
	}
	switch {
	case f.url != "":
		t.cfg.URL = f.url
		addURLSecrets(f.url) // redact.go
	case f.sse != "":
		t.cfg.SSEURL = f.sse
		addURLSecrets(f.sse)
	case f.stdio != "":
		words, err := splitWords(f.stdio)
		if err != nil {
			return nil, usageErrorf("--stdio: %v", err)
		}
		if len(words) == 0 {
			return nil, usageErrorf("--stdio: no command given")
		}
		t.command = words
		t.cfg.Command = &mcpool.Command{Path: words[0], Args: words[1:], Stderr: t.stderr}
	default:
		url, stop, err := startEmbedded()
		if err != nil {
			return nil, err
		}
		t.cfg.URL, t.stop = url, stop
	}
	if err := t.configureAuth(&f.auth, &f.answers, stderr); err != nil { // auth.go
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *target) close() {
	for _, f := range t.cleanup {
		f()
	}
	if t.stop != nil {
		t.stop()
	}
}

// poolConfig returns the target's Config with the given shape.
func (t *target) poolConfig(minSessions, maxSessions, callsPerSession int) mcpool.Config {
	cfg := t.cfg
	if cfg.Command != nil {
		c := *cfg.Command
		cfg.Command = &c
	}
	cfg.MinSessions, cfg.MaxSessions, cfg.MaxCallsPerSession = minSessions, maxSessions, callsPerSession
	return cfg
}

// clientOptions are those of a per-call client. They match the pool's (no
// roots capability, same logger) so that bench compares session reuse and
// nothing else: a client advertising roots leaves some stdio servers running
// after stdin closes.
func (t *target) clientOptions() *mcp.ClientOptions {
	return t.withClientHandlers(&mcp.ClientOptions{Logger: t.cfg.Logger, Capabilities: &mcp.ClientCapabilities{}}) // elicit.go
}

// transport returns a fresh transport for one per-call session. HTTP
// transports share hc, so per-call sessions reuse TCP connections as an
// agent's HTTP client would.
func (t *target) transport(hc *http.Client) mcp.Transport {
	hc = t.withCredentials(hc) // auth.go
	switch {
	case t.cfg.URL != "":
		return &mcp.StreamableClientTransport{Endpoint: t.cfg.URL, HTTPClient: hc, OAuthHandler: t.cfg.OAuthHandler}
	case t.cfg.SSEURL != "":
		return &mcp.SSEClientTransport{Endpoint: t.cfg.SSEURL, HTTPClient: hc}
	default:
		cmd := exec.Command(t.command[0], t.command[1:]...)
		cmd.Stderr = t.stderr
		ct := &mcp.CommandTransport{Command: cmd, TerminateDuration: mcpool.DefaultStdioTerminate}
		if t.procs != nil {
			return &trackedTransport{ct: ct, reg: t.procs}
		}
		return ct
	}
}

// httpTransport returns a transport for HTTP clients of the target that
// keeps idle connections for that many calls in flight: each call is its
// own POST, and net/http's default of 2 idle connections per host would
// churn the rest. Under --chaos it dials the fault proxy.
func (t *target) httpTransport(idle int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = idle
	tr.MaxIdleConns = max(tr.MaxIdleConns, idle)
	if t.dial != nil {
		tr.Proxy, tr.DialContext = nil, t.dial
	}
	return tr
}

// splitWords splits a command line as a POSIX shell would in the simple
// cases, so that --stdio can name a program whose path or arguments hold
// spaces: whitespace separates words, single quotes keep everything
// literal, double quotes keep whitespace and honour \" and \\, and a
// backslash elsewhere escapes the next character. No expansion of any kind.
func splitWords(s string) ([]string, error) {
	var (
		words   []string
		word    strings.Builder
		inWord  bool
		quote   rune // ' or " while inside quotes
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			// Inside double quotes only \" and \\ are escapes.
			if quote == '"' && r != '"' && r != '\\' {
				word.WriteRune('\\')
			}
			word.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	// The command line is not quoted back: it may carry a credential
	// (--api-key ..., env TOKEN=...).
	if quote != 0 {
		return nil, usageErrorf("unterminated %c quote", quote)
	}
	if escaped {
		return nil, usageErrorf("trailing backslash")
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
