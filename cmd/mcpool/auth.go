package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Environment variables that stand in for flags whose values are secrets:
// a command line is visible to every user of the machine (ps), the
// environment is not.
const (
	// oauthConnectTimeout is the least ConnectTimeout under --oauth.
	oauthConnectTimeout = 10 * time.Minute

	envToken        = "MCPOOL_TOKEN"
	envClientSecret = "MCPOOL_CLIENT_SECRET"
)

// serverAuth is how the command authenticates to one HTTP server. The
// flags fill one; a config file's server entry can fill another and call
// configure the same way.
type serverAuth struct {
	// Headers are sent on every HTTP request.
	Headers http.Header
	// Token is a static bearer token.
	Token string
	// OAuth runs the authorization-code flow with PKCE (a person signs in
	// through a browser).
	OAuth bool
	// ClientID and ClientSecret name a pre-registered OAuth client. With
	// OAuth they are used for the authorization-code flow; without it, for
	// the client-credentials grant (machine to machine, no person).
	ClientID     string
	ClientSecret string
	// ClientMetadataURL is an HTTPS URL of this client's metadata document,
	// used as its client ID where the authorization server supports it.
	ClientMetadataURL string
	// RedirectPort is the loopback port of the redirect listener; 0 picks
	// a free one.
	RedirectPort int
	// TokenCache is a file (mode 0600) that keeps OAuth tokens across runs;
	// empty keeps them in memory only.
	TokenCache string
}

// credentials reports whether any credentials are configured: a token, an
// OAuth flow, or an Authorization header.
func (a *serverAuth) credentials() bool {
	return a.Token != "" || a.OAuth || a.ClientID != "" || a.Headers.Get("Authorization") != ""
}

// check reports a contradictory combination as a usage error.
func (a *serverAuth) check() error {
	switch {
	case a.Token != "" && (a.OAuth || a.ClientID != ""):
		return usageErrorf("give --token or OAuth (--oauth, --client-id), not both")
	case a.Token != "" && a.Headers.Get("Authorization") != "":
		return usageErrorf("give --token or an Authorization --header, not both")
	case !a.OAuth && a.ClientID != "" && a.ClientSecret == "":
		return usageErrorf("--client-id without --oauth runs the client-credentials grant, which needs --client-secret (or %s); add --oauth to sign in through a browser", envClientSecret)
	case a.ClientSecret != "" && a.ClientID == "":
		return usageErrorf("--client-secret needs --client-id")
	case !a.OAuth && (a.ClientMetadataURL != "" || a.RedirectPort != 0):
		return usageErrorf("--client-metadata-url and --redirect-port need --oauth")
	case a.TokenCache != "" && !a.OAuth:
		return usageErrorf("--token-cache needs --oauth")
	case a.RedirectPort < 0 || a.RedirectPort > 65535:
		return usageErrorf("--redirect-port %d is not a port", a.RedirectPort)
	}
	return nil
}

// configure puts the credentials into cfg (adding to its Headers), for
// the server cfg names. The flags call it for the command's one server; a
// config file's server entry can fill a serverAuth and call it per server.
// OAuth starts a loopback redirect listener: call the returned stop when
// the command ends (it is never nil). prompt receives the authorization
// URL for the person to open.
func (a *serverAuth) configure(cfg *mcpool.Config, prompt io.Writer) (stop func(), err error) {
	stop = func() {}
	if err := a.check(); err != nil {
		return stop, err
	}
	if cfg.URL == "" && cfg.SSEURL == "" {
		if a.credentials() || len(a.Headers) > 0 {
			return stop, usageErrorf("--header, --token and OAuth apply to HTTP servers (--url, --sse); a stdio server takes its credentials from its environment")
		}
		return stop, nil
	}
	// Added to what cfg may already carry (a config file's headers).
	if len(a.Headers) > 0 {
		h := cfg.Headers.Clone()
		if h == nil {
			h = http.Header{}
		}
		maps.Copy(h, a.Headers.Clone())
		cfg.Headers = h
	}
	if a.Token != "" {
		cfg.BearerToken = a.Token
	}
	if !a.OAuth && a.ClientID == "" {
		return stop, nil
	}
	if cfg.URL == "" {
		return stop, usageErrorf("OAuth works with --url (streamable HTTP) only")
	}
	if !a.OAuth {
		h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
			Credentials: &oauthex.ClientCredentials{
				ClientID:         a.ClientID,
				ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: a.ClientSecret},
			},
		})
		if err != nil {
			return stop, usageErrorf("client credentials: %v", err)
		}
		cfg.OAuthHandler = h
		return stop, nil
	}
	h, stop, err := newAuthorizationCodeHandler(a, cfg.URL, prompt)
	if err != nil {
		return func() {}, err
	}
	cfg.OAuthHandler = h
	// The connect that meets the 401 runs the browser step: a person
	// needs longer than a handshake. The command's --timeout still bounds it.
	cfg.ConnectTimeout = max(cfg.ConnectTimeout, oauthConnectTimeout)
	return stop, nil
}

// authFlags registers serverAuth's flags.
type authFlags struct {
	serverAuth
	headers headerList
}

func (f *authFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.headers, "header", "a `'Name: value'` header sent on every HTTP request; repeatable")
	fs.StringVar(&f.Token, "token", "", "bearer token sent on every HTTP request (default $"+envToken+" when no other\ncredentials are given)")
	fs.BoolVar(&f.OAuth, "oauth", false, "sign in with OAuth 2.1 (authorization code with PKCE): the authorization URL is\n"+
		"printed, and opened in a browser when one is available; a loopback listener\n"+
		"receives the redirect. The client registers dynamically unless --client-id or\n"+
		"--client-metadata-url is given")
	fs.StringVar(&f.ClientID, "client-id", "", "pre-registered OAuth client ID; without --oauth, runs the client-credentials\ngrant with --client-secret (machine to machine)")
	fs.StringVar(&f.ClientSecret, "client-secret", "", "OAuth client secret (default $"+envClientSecret+" when --client-id is given)")
	fs.StringVar(&f.ClientMetadataURL, "client-metadata-url", "", "HTTPS URL of this client's metadata document, used as its client ID where\nthe authorization server supports it (--oauth)")
	fs.IntVar(&f.RedirectPort, "redirect-port", 0, "loopback port of the OAuth redirect listener (--oauth); 0 picks a free port")
	fs.StringVar(&f.TokenCache, "token-cache", "", "file that keeps OAuth tokens across runs, written with mode 0600; servers and\nprocesses may share it (FILE.lock beside it orders their writes)\n(--oauth; default: tokens stay in memory)")
}

// resolve finishes the flags after parsing.
func (f *authFlags) resolve() *serverAuth {
	a := f.serverAuth
	a.Headers = http.Header(f.headers).Clone()
	if a.Token == "" && !a.OAuth && a.ClientID == "" && a.Headers.Get("Authorization") == "" {
		a.Token = os.Getenv(envToken)
	}
	if a.ClientSecret == "" && a.ClientID != "" {
		a.ClientSecret = os.Getenv(envClientSecret)
	}
	addSecret(a.Token) // redact.go: errors never show them
	addSecret(a.ClientSecret)
	for _, vs := range a.Headers {
		for _, v := range vs {
			addSecret(v)
		}
	}
	return &a
}

// headerList collects repeated --header flags.
type headerList http.Header

// String is for flag.Value; the headers are not shown (they may hold secrets).
func (h *headerList) String() string { return "" }

// secret marks the flag as holding credentials (see secretFlag).
func (h *headerList) secret() {}

// Set parses "Name: value". Its errors never quote what was given, nor
// any part of it: a header is where credentials go, and a malformed one
// ("Authorization Bearer abc") is still a credential.
func (h *headerList) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	switch {
	case !ok:
		return errors.New("want 'Name: value': no colon after the name (the value is not shown: it may hold a credential)")
	case name == "":
		return errors.New("want 'Name: value': no name before the colon")
	case strings.ContainsAny(name, " \t"):
		return errors.New("want 'Name: value': the name before the colon has a space (the value is not shown: it may hold a credential)")
	}
	if *h == nil {
		*h = headerList{}
	}
	http.Header(*h).Add(name, strings.TrimSpace(value))
	return nil
}

// credentialsGiven records whether the target the command opened has
// credentials, and fromConfig whether it is a config file's servers, so
// that the one-line error of a 401 can say what to do. The command opens
// one target per run.
var credentialsGiven, fromConfig atomic.Bool

// given returns the credential flags that were set, by name.
func (f *authFlags) given() []string {
	var names []string
	for _, g := range []struct {
		name string
		set  bool
	}{
		{"--header", len(f.headers) > 0}, {"--token", f.Token != ""}, {"--oauth", f.OAuth},
		{"--client-id", f.ClientID != ""}, {"--client-secret", f.ClientSecret != ""},
		{"--client-metadata-url", f.ClientMetadataURL != ""}, {"--redirect-port", f.RedirectPort != 0},
		{"--token-cache", f.TokenCache != ""},
	} {
		if g.set {
			names = append(names, g.name)
		}
	}
	return names
}

// explainError rewrites the command's error for a person: a 401 says
// whether to add credentials or that the server refused them, and the
// "mcpool: " prefix of the library's errors appears once, at the start of
// the line report prints (never twice in one message).
func explainError(err error) error {
	if err == nil {
		return nil
	}
	msg := withoutPrefix(err) // main.go
	if fromConfig.Load() {
		// A single server's wording (--connect-timeout) is explainConnect's.
		msg = strings.ReplaceAll(msg, "Config.ConnectTimeout", `--connect-timeout, or the server's "connectTimeout" in the config file,`)
	}
	if errors.Is(err, mcpool.ErrUnauthorized) || isUnauthorized(err) {
		what := "the server requires authorization; use --token or --oauth (or --client-id and --client-secret)"
		switch {
		case fromConfig.Load() && credentialsGiven.Load():
			what = "the server refused its credentials (401 Unauthorized); check its \"headers\" or \"auth\" in the config file"
		case fromConfig.Load():
			what = "the server requires authorization; give it credentials in the config file: \"headers\" (a token) or \"auth\" (OAuth)"
		case credentialsGiven.Load():
			what = "the server refused the token (401 Unauthorized); check --token, --header or the OAuth client"
		}
		var ce *mcpool.ConnectError
		if errors.As(err, &ce) {
			msg = fmt.Sprintf("connect to %s failed: %s", ce.Target, what)
		} else {
			msg = what
		}
	}
	if msg == err.Error() {
		return err
	}
	return &explained{msg: msg, err: err}
}

// isUnauthorized spots a 401 the library did not classify: the SDK's
// streamable transport reports it as the status text.
func isUnauthorized(err error) bool {
	var oauthErr *oauthFlowError
	if errors.As(err, &oauthErr) {
		return false
	}
	return strings.HasSuffix(err.Error(), http.StatusText(http.StatusUnauthorized))
}

// explained is an error with a message rewritten for a person; errors.Is
// and As still see the original.
type explained struct {
	msg string
	err error
}

// Error is the rewritten message.
func (e *explained) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *explained) Unwrap() error { return e.err }

// Compile-time check: the SDK's handlers satisfy the pool's field.
var _ auth.OAuthHandler = (*extauth.ClientCredentialsHandler)(nil)

// configureAuth applies the credentials and answer flags to the target's
// Config (and so to every pool the command makes). The OAuth redirect
// listener, if any, stops when the target closes.
func (t *target) configureAuth(af *authFlags, ans *answerFlags, stderr io.Writer) error {
	a := af.resolve()
	credentialsGiven.Store(a.credentials())
	fromConfig.Store(false)
	stop, err := a.configure(&t.cfg, stderr)
	t.cleanup = append(t.cleanup, stop)
	if err != nil {
		return err
	}
	t.cfg.ClientHandlers = ans.handlers(stderr)
	return nil
}

// withCredentials returns a copy of hc that adds the target's headers and
// bearer token, for sessions made without the pool (bench's per-call
// mode); the pool adds them itself. OAuth goes on the transport instead.
func (t *target) withCredentials(hc *http.Client) *http.Client {
	if hc == nil || (len(t.cfg.Headers) == 0 && t.cfg.BearerToken == "") {
		return hc
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out := *hc
	out.Transport = &credentialsTransport{base: base, headers: t.cfg.Headers, token: t.cfg.BearerToken}
	return &out
}

// credentialsTransport adds static headers and a bearer token.
type credentialsTransport struct {
	base    http.RoundTripper
	headers http.Header
	token   string
}

// RoundTrip sends req with the command's credentials.
func (c *credentialsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context()) // a RoundTripper must not modify req
	for k, v := range c.headers {
		if r.Header.Get(k) == "" { // never replace the protocol's own headers
			r.Header[k] = v
		}
	}
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.base.RoundTrip(r)
}
