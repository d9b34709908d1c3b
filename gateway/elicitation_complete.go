package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// URL-mode elicitation (MCP spec 2025-11-25, "Elicitation: URL mode"): a
// server asks the client to send its user to a URL, with an
// elicitationId, either in an elicitation/create request while serving a
// call or in a URLElicitationRequired error (-32042) that ends the call.
// When the interaction ends out of band, the server sends
// notifications/elicitation/complete with that id, often after the call
// has ended. The gateway passes it to the downstream session that was
// given the elicitation: it notes, for each server, which downstream
// session each URL elicitation went to (for an hour at most, and until its
// completion arrives or the client declines it). A completion the gateway
// cannot place that way goes to the client of the call it came with (its
// response stream), else to the isolated upstream session's own
// downstream session; from a shared upstream session it is dropped, never
// guessed onto another client.

// urlElicitationTTL bounds how long a URL elicitation waits for its
// completion.
const urlElicitationTTL = time.Hour

type urlKey struct {
	srv *server
	id  string
}

type urlElicitation struct {
	ss *mcp.ServerSession
	at time.Time
}

type urlElicitations struct {
	mu sync.Mutex
	m  map[urlKey]urlElicitation
}

// noteURLElicitation records that the URL elicitation id of srv went to ss.
func (h *relayHub) noteURLElicitation(srv *server, id string, ss *mcp.ServerSession) {
	if ss == nil || id == "" {
		return
	}
	u := &h.urls
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[urlKey]urlElicitation{}
	}
	for k, e := range u.m {
		if now.Sub(e.at) > urlElicitationTTL {
			delete(u.m, k)
		}
	}
	u.m[urlKey{srv, id}] = urlElicitation{ss: ss, at: now}
}

func (h *relayHub) forgetURLElicitation(srv *server, id string) {
	h.urls.mu.Lock()
	delete(h.urls.m, urlKey{srv, id})
	h.urls.mu.Unlock()
}

// takeURLElicitation returns (and forgets) the downstream session that the
// URL elicitation id of srv went to, or nil.
func (h *relayHub) takeURLElicitation(srv *server, id string) *mcp.ServerSession {
	u := &h.urls
	u.mu.Lock()
	defer u.mu.Unlock()
	k := urlKey{srv, id}
	e, ok := u.m[k]
	if !ok {
		return nil
	}
	delete(u.m, k)
	if time.Since(e.at) > urlElicitationTTL {
		return nil
	}
	return e.ss
}

// noteURLElicitationError records the URL elicitations of a
// URLElicitationRequired error (-32042) that srv returned to ss's call.
func (h *relayHub) noteURLElicitationError(srv *server, ss *mcp.ServerSession, err error) {
	var je *jsonrpc.Error
	if ss == nil || !errors.As(err, &je) || je.Code != mcp.CodeURLElicitationRequired || len(je.Data) == 0 {
		return
	}
	var data struct {
		Elicitations []struct {
			ElicitationID string `json:"elicitationId"`
		} `json:"elicitations"`
	}
	if json.Unmarshal(je.Data, &data) != nil {
		return
	}
	for _, e := range data.Elicitations {
		h.noteURLElicitation(srv, e.ElicitationID, ss)
	}
}

// relayElicitationComplete passes srv's notifications/elicitation/complete
// on (see the comment at the top of this file). owner is the downstream
// session of the isolated upstream session that sent it, or nil.
func (g *Gateway) relayElicitationComplete(ctx context.Context, srv *server, owner *mcp.ServerSession, req *mcp.ElicitationCompleteNotificationRequest) {
	if req.Params == nil {
		return
	}
	p := *req.Params
	p.Meta = copyMeta(p.Meta)
	tok, _ := p.Meta[callerMetaKey].(string)
	delete(p.Meta, callerMetaKey)
	if len(p.Meta) == 0 {
		p.Meta = nil
	}
	ss := g.relay.takeURLElicitation(srv, p.ElicitationID)
	if ss != nil && owner != nil && ss != owner {
		ss = nil // another downstream session's upstream session sent it
	}
	sendCtx := g.ctx
	if tok == "" {
		tok, _ = ctx.Value(callerKey{}).(string)
	}
	g.relay.mu.Lock()
	c := g.relay.byToken[tok]
	g.relay.mu.Unlock()
	if c != nil && c.srv == srv && c.ss != nil && (ss == nil || ss == c.ss) && (owner == nil || c.ss == owner) {
		// Its call is in flight: on the call's stream.
		ss, sendCtx = c.ss, c.ctx
	}
	if ss == nil {
		ss = owner
	}
	if ss == nil {
		g.log.Debug("elicitation: completion of a URL elicitation that no downstream session was given", "server", srv.name, "elicitation", p.ElicitationID)
		return
	}
	if sendCtx.Err() != nil {
		sendCtx = g.ctx
	}
	sctx, cancel := context.WithTimeout(sendCtx, 10*time.Second)
	defer cancel()
	err := ss.NotifyElicitationComplete(sctx, &p)
	if err != nil && sendCtx != g.ctx {
		// The call's stream closed meanwhile: on the session's own.
		sctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
		defer cancel()
		err = ss.NotifyElicitationComplete(sctx, &p)
	}
	if err != nil {
		g.log.Debug("elicitation: relaying a URL elicitation's completion failed", "server", srv.name, "error", err)
	}
}
