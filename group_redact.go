package mcpool

import (
	"log/slog"
	"strings"

	"github.com/mcpool/mcpool/internal/errmsg"
	"github.com/mcpool/mcpool/internal/redact"
)

// Secrets returns the credentials in c, for a caller that must keep them
// out of its own output: header values (and the credentials of "Scheme
// credentials" values alone), the bearer token, the stdio command's
// environment values, and the password and query values of URL and SSEURL
// (raw and escaped). Values shorter than four bytes are left out. Config
// files expand ${VAR} into all of these, and a transport error can quote a
// URL with its query (net/http's *url.Error hides only the password).
func (c Config) Secrets() []string {
	var r redact.Redactor
	addConfigSecrets(&r, c)
	return r.List()
}

func addConfigSecrets(r *redact.Redactor, c Config) {
	r.AddHeader(c.Headers)
	r.Add(c.BearerToken)
	if c.Command != nil {
		r.AddEnv(c.Command.Env)
	}
	r.AddURL(c.URL)
	r.AddURL(c.SSEURL)
}

// redactor removes the group's secrets (see Config.Secrets) from the
// messages the group passes on (errors, Stats, logs).
type redactor struct{ r redact.Redactor }

func newRedactor(cfgs []Config) *redactor {
	red := &redactor{}
	red.add(cfgs)
	return red
}

// add adds the secrets of cfgs (Group.Update's new servers). It is safe to
// call while messages are being redacted.
func (r *redactor) add(cfgs []Config) {
	for _, c := range cfgs {
		addConfigSecrets(&r.r, c)
	}
}

func (r *redactor) string(s string) string { return r.r.String(s) }

// err returns err with its message redacted, and "mcpool: " said once
// (a pool error can wrap another that says it too); errors.Is and
// errors.As still see the original chain.
func (r *redactor) err(err error) error {
	if err == nil {
		return err
	}
	msg := err.Error()
	clean := r.r.String(msg)
	if rest, ok := strings.CutPrefix(clean, errmsg.Prefix); ok {
		clean = errmsg.Prefix + errmsg.Unprefixed(rest)
	}
	if clean != msg {
		return redact.NewError(clean, err)
	}
	return err
}

// handler returns h wrapped so that every record's message and attributes
// are redacted; always, since Group.Update may add secrets later.
func (r *redactor) handler(h slog.Handler) slog.Handler {
	return r.r.Handler(h)
}
