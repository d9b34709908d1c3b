package main

import (
	"flag"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/mcpool/mcpool"
)

// secretFlag is a flag.Value that holds credentials (--header): when its
// Set fails, the flag package's message ("invalid value %q for flag -%s:
// ...") would print what was given, credential and all, so parseFlags
// drops the value from it. String flags such as --token, --client-secret
// and --redis never fail to parse, so they need no marker.
type secretFlag interface {
	flag.Value
	secret()
}

// invalidValue matches the flag package's message for a value its Set
// refused; the value is a Go string literal (%q).
var invalidValue = regexp.MustCompile(`^invalid value "(?:[^"\\]|\\.)*" for flag -([^:\s]+): `)

// withoutSecretValue returns the flag package's error message msg, minus
// the value given when the flag holds credentials.
func withoutSecretValue(fs *flag.FlagSet, msg string) string {
	m := invalidValue.FindStringSubmatchIndex(msg)
	if m == nil {
		return msg
	}
	name := msg[m[2]:m[3]]
	if f := fs.Lookup(name); f == nil {
		return msg
	} else if _, ok := f.Value.(secretFlag); !ok {
		return msg
	}
	return "invalid value for flag -" + name + ": " + msg[m[1]:]
}

// minSecret is the shortest credential report hides: replacing every
// occurrence of a shorter string would garble messages for little gain.
const minSecret = 6

// secrets holds the credentials the command was given (--token,
// --client-secret, --header values, a URL's password and query values,
// a config file's headers and tokens), so that report can hide them
// wherever an error from a transport or the SDK quotes them back (net/http
// quotes a request's whole URL, query included). It only grows: the
// command runs once per process; tests run it many times, where hiding a
// string an earlier run gave is harmless.
var secrets struct {
	mu  sync.Mutex
	set map[string]bool
}

// addSecret records s (and, for "Scheme credentials" header values, the
// credentials alone) as a credential to hide.
func addSecret(s string) {
	s = strings.TrimSpace(s)
	if len(s) < minSecret {
		return
	}
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	if secrets.set == nil {
		secrets.set = map[string]bool{}
	}
	secrets.set[s] = true
	if _, cred, ok := strings.Cut(s, " "); ok && len(strings.TrimSpace(cred)) >= minSecret {
		secrets.set[strings.TrimSpace(cred)] = true
	}
}

// addURLSecrets records a URL's password and query values.
func addURLSecrets(raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	if p, ok := u.User.Password(); ok {
		addSecret(p)
		addSecret(url.PathEscape(p))
		addSecret(url.QueryEscape(p))
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			addSecret(v)
			addSecret(url.QueryEscape(v))
		}
	}
}

// addConfigSecrets records the credentials of a server's configuration.
func addConfigSecrets(c *mcpool.Config) {
	addSecret(c.BearerToken)
	for _, vs := range c.Headers {
		for _, v := range vs {
			addSecret(v)
		}
	}
	addURLSecrets(c.URL)
	addURLSecrets(c.SSEURL)
}

// hideSecrets replaces every recorded credential in msg with "***",
// longest first so that one holding another is hidden whole.
func hideSecrets(msg string) string {
	secrets.mu.Lock()
	list := make([]string, 0, len(secrets.set))
	for s := range secrets.set {
		list = append(list, s)
	}
	secrets.mu.Unlock()
	slices.SortFunc(list, func(a, b string) int { return len(b) - len(a) })
	for _, s := range list {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	return msg
}
