package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The log level of a portable session travels. A 2025-11-25 client's
// logging/setLevel sets the level of the session's copy on the replica that
// takes it; the SDK drops log messages below it (none before a level is
// set). With a store (Redis), that replica stores the level beside the
// session (until its id expires), so that a replica adopting the session
// later starts at it, and publishes it, so that every replica holding a
// copy (the GET stream's, those of its isolated upstream sessions) sets it
// too. Without a store, the level reaches the copy of the replica that took
// the request only.

const (
	levelPrefix      = "gateway:log_level:"     // published: DIGEST ":" LEVEL ":" REPLICA
	levelStorePrefix = "gateway:session_level:" // stored until the id's expiry: the level
)

// relayLevel publishes the log level a client set on a portable session.
func (g *Gateway) relayLevel(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if method != "logging/setLevel" || err != nil || g.port == nil {
			return res, err
		}
		r, ok := req.(*mcp.ServerRequest[*mcp.SetLoggingLevelParams])
		if ok && r.Params != nil {
			g.port.levelSet(r.Session, r.Params.Level)
		}
		return res, err
	}
}

// levelSet stores and publishes the level set on ss, unless another
// replica's relay set it.
func (p *portable) levelSet(ss *mcp.ServerSession, level mcp.LoggingLevel) {
	if v, ok := p.applying.LoadAndDelete(ss); ok && v == level {
		return
	}
	store := p.g.relayStore()
	if store == nil || p.g.ctx.Err() != nil || strings.Contains(string(level), ":") {
		return
	}
	p.mu.Lock()
	e := p.bySS[ss]
	p.mu.Unlock()
	if e == nil {
		return
	}
	ttl := time.Duration(e.expiry-p.codec.now().Unix()) * time.Second
	go func() { // bounded by the timeout, and by Close
		ctx, cancel := context.WithTimeout(p.g.ctx, time.Second)
		defer cancel()
		err := store.Save(ctx, levelStorePrefix+e.digest, []byte(level), ttl)
		if err == nil {
			err = store.Invalidate(ctx, levelPrefix+e.digest+":"+string(level)+":"+p.g.replicaID())
		}
		if err != nil && p.g.ctx.Err() == nil {
			p.g.log.Debug("relaying a session's log level to the other replicas failed: their copies keep theirs", "error", err)
		}
	}()
}

// levelRelayed applies a level another replica published (rest is what
// follows levelPrefix) to this replica's copy of the session.
func (p *portable) levelRelayed(rest, self string) {
	digest, rest, _ := strings.Cut(rest, ":")
	level, from, _ := strings.Cut(rest, ":")
	if from == self || level == "" {
		return
	}
	p.mu.Lock()
	var (
		e  *portableSession
		id string
	)
	for sid, s := range p.sessions {
		if s.digest == digest {
			e, id = s, sid
			break
		}
	}
	p.mu.Unlock()
	if e == nil {
		return
	}
	<-e.ready
	if e.ss == nil {
		return
	}
	p.applyLevel(e, id, mcp.LoggingLevel(level))
}

// applyLevel sets the log level of e's server session as its client's
// logging/setLevel does: the SDK keeps the level to itself, so the request
// is handed to the session's transport, and its answer dropped.
func (p *portable) applyLevel(e *portableSession, id string, level mcp.LoggingLevel) {
	version := "2025-11-25"
	if ip := e.ss.InitializeParams(); ip != nil && ip.ProtocolVersion != "" {
		version = ip.ProtocolVersion
	}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":"mcpool-level-%d","method":"logging/setLevel","params":{"level":%q}}`, p.levelSeq.Add(1), level)
	ctx, cancel := context.WithTimeout(p.g.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/mcp", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", version)
	p.applying.Store(e.ss, level)
	defer p.applying.CompareAndDelete(e.ss, level)
	e.hold()
	defer e.release(p.g.opts.SessionIdleTimeout)
	e.t.ServeHTTP(&discardWriter{h: http.Header{}}, req)
}

// storedLevel is the level stored for the session of digest, or "" (no
// store, none stored, or the store did not answer in time).
func (p *portable) storedLevel(digest string) mcp.LoggingLevel {
	store := p.g.relayStore()
	if store == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(p.g.ctx, 250*time.Millisecond)
	defer cancel()
	v, _, ok, err := store.Load(ctx, levelStorePrefix+digest)
	if !ok || err != nil {
		return ""
	}
	return mcp.LoggingLevel(v)
}

// discardWriter is a ResponseWriter that drops what is written.
type discardWriter struct {
	h http.Header
}

// Header returns the headers, which nobody reads.
func (w *discardWriter) Header() http.Header { return w.h }

// Write drops b.
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader drops the status.
func (w *discardWriter) WriteHeader(int) {}

// Flush does nothing: there is nothing to send.
func (w *discardWriter) Flush() {}
