package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// callbackPath is where the loopback listener receives the redirect.
const callbackPath = "/callback"

// oauthFlowError is a failure of the browser step: the authorization
// server refused, or nobody completed the sign-in in time.
type oauthFlowError struct{ msg string }

// Error is the message for a person.
func (e *oauthFlowError) Error() string { return e.msg }

// newAuthorizationCodeHandler returns the go-sdk's authorization-code
// handler (PKCE, RFC 8707 resource, scope step-up) wired to a loopback
// redirect listener (RFC 8252 §7.3) on 127.0.0.1. stop closes the listener.
func newAuthorizationCodeHandler(a *serverAuth, serverURL string, prompt io.Writer) (auth.OAuthHandler, func(), error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.RedirectPort)))
	if err != nil {
		return nil, nil, fmt.Errorf("--oauth: starting the redirect listener: %w", err)
	}
	redirect := "http://" + ln.Addr().String() + callbackPath
	cb := newCallbackServer(ln, prompt)

	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL:              redirect,
		AuthorizationCodeFetcher: cb.fetch,
		// SEP-2207: ask for a refresh token where offered, so that a long
		// run (bench) or a token cache outlives the access token.
		RequestRefreshToken: true,
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs:  []string{redirect},
				ClientName:    "mcpool",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"},
			},
		},
	}
	if a.ClientMetadataURL != "" {
		cfg.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: a.ClientMetadataURL}
	}
	if a.ClientID != "" {
		cfg.PreregisteredClient = &oauthex.ClientCredentials{ClientID: a.ClientID}
		if a.ClientSecret != "" {
			cfg.PreregisteredClient.ClientSecretAuth = &oauthex.ClientSecretAuth{ClientSecret: a.ClientSecret}
		}
	}
	if a.TokenCache != "" {
		cache := &tokenCache{path: a.TokenCache, key: serverURL}
		initial, err := cache.load()
		if err != nil {
			cb.close()
			return nil, nil, err
		}
		cfg.InitialTokenSource = initial
		cfg.NewTokenSource = cache.newTokenSource
	}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		cb.close()
		return nil, nil, usageErrorf("--oauth: %v", err)
	}
	return h, cb.close, nil
}

// callbackServer is the loopback listener that receives the authorization
// server's redirect, and the fetcher that asks the person to sign in.
type callbackServer struct {
	srv    *http.Server
	done   chan struct{} // closed when Serve has returned
	prompt io.Writer

	mu      sync.Mutex
	waiting map[string]chan callbackResult // by OAuth state
}

type callbackResult struct {
	res *auth.AuthorizationResult
	err error
}

func newCallbackServer(ln net.Listener, prompt io.Writer) *callbackServer {
	cb := &callbackServer{done: make(chan struct{}), prompt: prompt, waiting: map[string]chan callbackResult{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+callbackPath, cb.callback)
	cb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(cb.done)
		_ = cb.srv.Serve(ln)
	}()
	return cb
}

func (cb *callbackServer) close() {
	_ = cb.srv.Close()
	<-cb.done
}

// callback receives the redirect. Only a redirect that carries the state
// of a flow under way is taken: anything else on the port is refused.
func (cb *callbackServer) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cb.mu.Lock()
	ch, ok := cb.waiting[q.Get("state")]
	delete(cb.waiting, q.Get("state"))
	cb.mu.Unlock()
	if !ok {
		http.Error(w, "mcpool: no sign-in is waiting for this redirect", http.StatusBadRequest)
		return
	}
	var res callbackResult
	if e := q.Get("error"); e != "" {
		msg := "the authorization server refused: " + e
		if d := q.Get("error_description"); d != "" {
			msg += " (" + d + ")"
		}
		res.err = &oauthFlowError{msg}
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "<!doctype html><title>mcpool</title><p>Sign-in failed: %s. You can close this window.</p>\n", html.EscapeString(msg))
	} else {
		res.res = &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}
		fmt.Fprint(w, "<!doctype html><title>mcpool</title><p>Signed in. You can close this window and return to mcpool.</p>\n")
	}
	ch <- res // buffered
}

// fetch is the handler's AuthorizationCodeFetcher: it prints the URL,
// opens it in a browser when one is available, and waits for the redirect
// until ctx ends (the command's --timeout).
func (cb *callbackServer) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	u, err := url.Parse(args.URL)
	if err != nil {
		return nil, err
	}
	state := u.Query().Get("state")
	ch := make(chan callbackResult, 1)
	cb.mu.Lock()
	cb.waiting[state] = ch
	cb.mu.Unlock()
	defer func() {
		cb.mu.Lock()
		delete(cb.waiting, state)
		cb.mu.Unlock()
	}()

	wait := "until the command's --timeout"
	if dl, ok := ctx.Deadline(); ok {
		wait = fmt.Sprintf("for %v (--timeout)", time.Until(dl).Round(time.Second))
	}
	fmt.Fprintf(cb.prompt, "mcpool: to authorize, open this URL in a browser (waiting %s):\n%s\n", wait, printable(args.URL))
	openBrowser(args.URL)

	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return nil, &oauthFlowError{fmt.Sprintf("nobody completed the sign-in in the browser in time (%v)", ctx.Err())}
	}
}

// openBrowser opens u in the user's browser when there is one: $BROWSER
// if set ("none" disables it), else the desktop's opener where a desktop
// session is visible. It does not wait for the browser. A URL that is
// not browsable (https, or http to this machine) is never opened. It
// reports whether it started a browser.
func openBrowser(u string) (started bool) {
	if !browsable(u) {
		return false // a file: or custom-scheme URL could run something local
	}
	var cmd *exec.Cmd
	switch b := os.Getenv("BROWSER"); {
	case b == "none":
		return false
	case b != "":
		cmd = exec.Command(b, u)
	case runtime.GOOS == "darwin":
		cmd = exec.Command("open", u)
	case runtime.GOOS == "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	case os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "":
		cmd = exec.Command("xdg-open", u)
	default:
		return false // a headless machine: the printed URL is the way
	}
	if cmd.Start() != nil {
		return false
	}
	go func() { _ = cmd.Wait() }() // reap it whenever it exits
	return true
}

// tokenCache keeps the OAuth tokens of one server in a file shared by
// servers (keyed by URL), mode 0600, so that later runs skip the browser.
type tokenCache struct {
	path string
	key  string
	mu   sync.Mutex
}

// cachedToken is what a later run needs to use and refresh the token.
type cachedToken struct {
	Token        *oauth2.Token    `json:"token"`
	ClientID     string           `json:"client_id"`
	ClientSecret string           `json:"client_secret,omitempty"`
	TokenURL     string           `json:"token_url"`
	AuthStyle    oauth2.AuthStyle `json:"auth_style"`
	Scopes       []string         `json:"scopes,omitempty"`
}

// errNoCacheEntry is returned by read when the file has no usable entry.
var errNoCacheEntry = errors.New("no cached token")
