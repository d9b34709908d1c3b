package main

import (
	"flag"
	"regexp"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/redact"
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

// secrets holds the credentials the command was given (--token,
// --client-secret, --header values, a URL's password and query values,
// a config file's headers, environment values and tokens), so that report
// can hide them wherever an error from a transport or the SDK quotes them
// back (net/http quotes a request's whole URL, query included). It only
// grows: the command runs once per process; tests run it many times, where
// hiding a string an earlier run gave is harmless. It is the module's one
// redactor (internal/redact), which the gateway and the Group use too.
var secrets redact.Redactor

// addSecret records s (and, for "Scheme credentials" header values, the
// credentials alone) as a credential to hide.
func addSecret(s string) { secrets.Add(s) }

// addURLSecrets records a URL's password and query values.
func addURLSecrets(raw string) { secrets.AddURL(raw) }

// addConfigSecrets records the credentials of a server's configuration
// (mcpool.Config.Secrets).
func addConfigSecrets(c *mcpool.Config) { secrets.Add(c.Secrets()...) }

// hideSecrets replaces every recorded credential in msg with "***",
// longest first so that one holding another is hidden whole.
func hideSecrets(msg string) string { return secrets.String(msg) }
