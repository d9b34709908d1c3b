// Package redact hides credentials in messages: the one redactor of the
// module, used by the Group, the gateway and the command, so that a log
// line, an error, a status field or a metric label never shows a header
// value, an environment value, a URL's password or query value, a token or
// a client secret.
package redact

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// MinLen is the shortest value treated as a secret: hiding every
// occurrence of a shorter one ("1", "on") would garble ordinary words.
const MinLen = 4

// Mask replaces a secret.
const Mask = "***"

// Redactor holds secrets and hides them in strings. The zero Redactor
// hides nothing; a nil *Redactor's String, Err and Handler pass things
// through. It is safe for concurrent use; Add may be called at any time.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so that a secret containing another goes whole
}

// Add records secrets. A "Scheme credentials" value (an Authorization
// header's) records the credentials alone too; values shorter than MinLen
// are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		r.addLocked(s)
		if _, cred, ok := strings.Cut(s, " "); ok {
			r.addLocked(strings.TrimSpace(cred))
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

func (r *Redactor) addLocked(s string) {
	if len(s) >= MinLen && !slices.Contains(r.secrets, s) {
		r.secrets = append(r.secrets, s)
	}
}

// AddHeader records every header value.
func (r *Redactor) AddHeader(h http.Header) {
	for _, vs := range h {
		r.Add(vs...)
	}
}

// AddEnv records the values of "KEY=value" environment entries.
func (r *Redactor) AddEnv(env []string) {
	for _, kv := range env {
		if _, v, ok := strings.Cut(kv, "="); ok {
			r.Add(v)
		}
	}
}

// AddURL records a URL's password and query values (raw and escaped).
func (r *Redactor) AddURL(raw string) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return
	}
	if p, ok := u.User.Password(); ok {
		r.Add(p, url.PathEscape(p), url.QueryEscape(p))
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			r.Add(v, url.QueryEscape(v))
		}
	}
}

// List returns the secrets recorded, longest first.
func (r *Redactor) List() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.secrets)
}

// String returns s with every secret replaced by Mask.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	return s
}

// Err returns err with its message redacted; errors.Is and errors.As still
// see the original chain. It returns err itself when nothing was hidden.
func (r *Redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := r.String(msg); clean != msg {
		return &Error{msg: clean, err: err}
	}
	return err
}

// Error is an error whose message had secrets hidden.
type Error struct {
	msg string
	err error
}

// NewError returns an error with message msg (already redacted) that
// unwraps to err.
func NewError(msg string, err error) *Error { return &Error{msg: msg, err: err} }

// Error is the message, with secrets replaced.
func (e *Error) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *Error) Unwrap() error { return e.err }

// Handler returns h wrapped so that every record's message and attributes
// are redacted.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r == nil {
		return h
	}
	if rh, ok := h.(*handler); ok && rh.r == r {
		return h
	}
	return &handler{h: h, r: r}
}

type handler struct {
	h slog.Handler
	r *Redactor
}

// Enabled implements slog.Handler.
func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		clean := make([]any, len(attrs))
		for i, ga := range attrs {
			clean[i] = h.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.String(err.Error()))
		}
		return slog.String(a.Key, h.r.String(v.String()))
	}
	return a
}

// WithAttrs implements slog.Handler.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &handler{h: h.h.WithAttrs(clean), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), r: h.r}
}
