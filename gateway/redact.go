package gateway

import (
	"log/slog"

	"github.com/mcpool/mcpool/internal/redact"
)

// newSecrets is the gateway's redactor: the credentials of every server's
// Config (mcpool.Config.Secrets), the static Token, the token-exchange
// client secrets and Options.Secrets. The gateway's logger, the errors it
// returns to clients for failed calls, its status (/status.json, the
// status page) and the metrics it labels all go through it.
func newSecrets(opts Options) *redact.Redactor {
	r := &redact.Redactor{}
	r.Add(opts.Token)
	r.Add(opts.Secrets...)
	for _, s := range opts.Servers {
		r.Add(s.Config.Secrets()...)
		if x := s.TokenExchange; x != nil {
			r.Add(x.Secrets()...)
		}
	}
	return r
}

// Redact returns s with every credential the gateway knows of hidden: for
// a caller's own output about the gateway (metric labels, say).
func (g *Gateway) Redact(s string) string { return g.sec.String(s) }

// logger wraps l so that every line is redacted.
func loggerOf(r *redact.Redactor, l *slog.Logger) *slog.Logger {
	return slog.New(r.Handler(l.Handler()))
}

// redactStatus hides credentials in a status row's free text (list errors,
// replica endpoints, details).
func (g *Gateway) redactStatus(row ServerStatus) ServerStatus {
	row.Name, row.Detail, row.ListError = g.sec.String(row.Name), g.sec.String(row.Detail), g.sec.String(row.ListError)
	for i := range row.Replicas {
		row.Replicas[i] = g.redactStatus(row.Replicas[i])
	}
	return row
}
