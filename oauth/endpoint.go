package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpool/mcpool/internal/loopback"
)

// defaultHTTPTimeout bounds the requests of a client this package makes
// when none is given.
const defaultHTTPTimeout = 10 * time.Second

// ErrInsecureEndpoint: an authorization server URL (issuer, key set,
// introspection or token endpoint, configured or discovered) is plain http
// on a host that is not loopback. The MCP authorization specification
// ("Communication Security") requires https for every authorization server
// endpoint: over plain http anyone on the network path could substitute the
// signing keys or the introspection answers, and so forge any identity, or
// read the tokens and client secrets sent there.
var ErrInsecureEndpoint = errors.New("must be https, as the MCP authorization specification requires for authorization server endpoints (plain http only on a loopback host: 127.0.0.0/8, ::1, localhost)")

// ConfigError is an invalid field of a [Config] or an [Exchanger]. It never
// holds a URL's query, user information or a secret.
type ConfigError struct {
	// Field is the type and Go field: Config.Issuer, Config.JWKSURL,
	// Config.IntrospectionURL, Config.ClientID, Exchanger.TokenURL...
	Field string
	// Reason says what is wrong.
	Reason string
	// Err is [ErrInsecureEndpoint] for a plain-http URL off loopback.
	Err error
}

// Error names the field and says what is wrong with it.
func (e *ConfigError) Error() string { return "oauth: " + e.Field + ": " + e.Reason }

// Unwrap returns [ErrInsecureEndpoint] or nil.
func (e *ConfigError) Unwrap() error { return e.Err }

// CheckEndpoint reports whether raw may be an authorization server
// endpoint: an absolute https URL, or an http URL whose host is loopback
// (127.0.0.0/8, ::1 or localhost), for tests and an authorization server on
// the same machine. Its error (wrapping [ErrInsecureEndpoint] for plain
// http) says what is wrong, without raw's query or user information. It is
// the package's one rule for these URLs, which every configured and every
// discovered endpoint, and every redirect to one, must pass.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("must be an absolute https URL")
	}
	if u.Scheme == "http" && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("%w; got http://%s", ErrInsecureEndpoint, u.Host)
	}
	return nil
}

// endpointField checks the endpoint raw of field.
func endpointField(field, raw string) error {
	if err := CheckEndpoint(raw); err != nil {
		ce := &ConfigError{Field: field, Reason: err.Error()}
		if errors.Is(err, ErrInsecureEndpoint) {
			ce.Err = ErrInsecureEndpoint
		}
		return ce
	}
	return nil
}

// secureClient returns a shallow copy of c (nil: one with a 10s timeout)
// that refuses redirects to a URL [CheckEndpoint] refuses: an https
// endpoint redirected to plain http would expose what it serves all the
// same. Other redirects follow c's own policy.
func secureClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: defaultHTTPTimeout}
	}
	cp := *c
	next := c.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckEndpoint(req.URL.String()); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}
