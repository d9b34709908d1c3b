package mcpool

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
)

// redactor removes the group's secrets from messages: header values, bearer
// tokens, and the password and query values of server URLs. Config files
// expand ${VAR} into all of these, and a transport error can quote a URL
// with its query (net/http's *url.Error hides only the password), so
// messages the group passes on (errors, Stats, logs) go through it.
type redactor struct {
	// secrets, longest first so that a secret containing another goes
	// whole; replaced whole when Group.Update adds servers.
	secrets atomic.Pointer[[]string]
}

// minSecret is the shortest value treated as a secret: shorter ones ("1",
// "on") would blank out ordinary words.
const minSecret = 4

func newRedactor(cfgs []Config) *redactor {
	r := &redactor{}
	r.add(cfgs)
	return r
}

// add adds the secrets of cfgs.
func (r *redactor) add(cfgs []Config) {
	var secrets []string
	if old := r.secrets.Load(); old != nil {
		secrets = slices.Clone(*old)
	}
	add := func(s string) {
		if len(s) >= minSecret && !slices.Contains(secrets, s) {
			secrets = append(secrets, s)
		}
	}
	for _, c := range cfgs {
		for _, vs := range c.Headers {
			for _, v := range vs {
				add(v)
				// "Bearer TOKEN": the token alone may be quoted too.
				if _, tok, ok := strings.Cut(v, " "); ok {
					add(tok)
				}
			}
		}
		add(c.BearerToken)
		for _, raw := range []string{c.URL, c.SSEURL} {
			u, err := url.Parse(raw)
			if err != nil || raw == "" {
				continue
			}
			if p, ok := u.User.Password(); ok {
				add(p)
			}
			add(u.RawQuery)
			for _, vs := range u.Query() {
				for _, v := range vs {
					add(v)
					add(url.QueryEscape(v))
				}
			}
		}
	}
	// Longest first.
	slices.SortStableFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	r.secrets.Store(&secrets)
}

func (r *redactor) string(s string) string {
	for _, sec := range *r.secrets.Load() {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// err returns err with its message redacted, and "mcpool: " said once
// (a pool error can wrap another that says it too); errors.Is and
// errors.As still see the original chain.
func (r *redactor) err(err error) error {
	if err == nil {
		return err
	}
	msg := err.Error()
	clean := r.string(msg)
	if rest, ok := strings.CutPrefix(clean, "mcpool: "); ok {
		clean = "mcpool: " + strings.ReplaceAll(rest, "mcpool: ", "")
	}
	if clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

// Error is the message, with secrets replaced.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *redactedError) Unwrap() error { return e.err }

// handler returns h wrapped so that every record's message and attributes
// are redacted.
func (r *redactor) handler(h slog.Handler) slog.Handler {
	return &redactHandler{h: h, r: r}
}

type redactHandler struct {
	h slog.Handler
	r *redactor
}

// Enabled implements slog.Handler.
func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.string(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.string(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		clean := make([]any, len(attrs))
		for i, ga := range attrs {
			clean[i] = h.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.string(err.Error()))
		}
		return slog.String(a.Key, h.r.string(v.String()))
	}
	return a
}

// WithAttrs implements slog.Handler.
func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &redactHandler{h: h.h.WithAttrs(clean), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{h: h.h.WithGroup(name), r: h.r}
}
