package oauth

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Kind is what a call addressed.
type Kind string

// Kinds of calls.
const (
	KindTool     Kind = "tool"
	KindPrompt   Kind = "prompt"
	KindResource Kind = "resource"
)

// Outcomes of a call, for [Call.Outcome]. Others may be used; these are the
// ones the gateway writes.
const (
	OutcomeOK          = "ok"           // answered (a tool result with isError counts as ok: the tool ran)
	OutcomeError       = "error"        // failed: upstream or gateway error
	OutcomeDenied      = "denied"       // refused by policy (scope, access, tool filter)
	OutcomeRateLimited = "rate_limited" // refused by the per-identity rate limit
)

// Call is one audited call: who made it, to what, and how it ended. It has
// no field for arguments, results or tokens, and must not be given any.
type Call struct {
	// Time is when the call started; zero means when it is recorded.
	Time     time.Time
	Subject  string
	ClientID string
	// Server is the upstream server's name in the gateway's configuration.
	Server string
	Kind   Kind
	// Name is the tool or prompt name, or the resource URI.
	Name    string
	Outcome string
	// Duration is how long the call took.
	Duration time.Duration
	// Bytes is the size of the answer sent to the client, in bytes.
	Bytes int64
}

// Auditor writes one JSON object per line per call, for example
//
//	{"time":"2026-01-02T03:04:05.123Z","msg":"call","subject":"alice","client_id":"app","server":"github","kind":"tool","name":"create_issue","outcome":"ok","duration_ms":12.5,"bytes":812}
//
// A nil *Auditor records nothing. Its methods are safe for concurrent use;
// each line is written with one Write call.
type Auditor struct {
	log *slog.Logger
}

// NewAuditor returns an Auditor writing to w (a file opened for append, or
// os.Stderr).
func NewAuditor(w io.Writer) *Auditor {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{} // every line is the same level: leave it out
			}
			return a
		},
	})
	return &Auditor{log: slog.New(h)}
}

// Record writes c.
func (a *Auditor) Record(ctx context.Context, c Call) {
	if a == nil {
		return
	}
	t := c.Time
	if t.IsZero() {
		t = time.Now()
	}
	r := slog.NewRecord(t, slog.LevelInfo, "call", 0)
	r.AddAttrs(
		slog.String("subject", c.Subject),
		slog.String("client_id", c.ClientID),
		slog.String("server", c.Server),
		slog.String("kind", string(c.Kind)),
		slog.String("name", c.Name),
		slog.String("outcome", c.Outcome),
		slog.Float64("duration_ms", float64(c.Duration.Microseconds())/1000),
		slog.Int64("bytes", c.Bytes),
	)
	_ = a.log.Handler().Handle(ctx, r)
}

// Start begins auditing a call by id (the zero Identity for an
// unauthenticated one) and returns the function that records it when it
// ends, with its outcome and answer size.
func (a *Auditor) Start(id Identity, server string, kind Kind, name string) func(ctx context.Context, outcome string, bytes int64) {
	start := time.Now()
	return func(ctx context.Context, outcome string, bytes int64) {
		a.Record(ctx, Call{Time: start, Subject: id.Subject, ClientID: id.ClientID, Server: server,
			Kind: kind, Name: name, Outcome: outcome, Duration: time.Since(start), Bytes: bytes})
	}
}
