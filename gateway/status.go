package gateway

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
)

// Status is the gateway's state, as served at /status.json and shown on the
// status page. Latency and rates are measured at the gateway (queueing and
// the upstream call together) over the last minute.
type Status struct {
	Ready       bool    `json:"ready"`
	UptimeSec   float64 `json:"uptimeSec"`
	InFlight    int64   `json:"inFlight"`    // calls in flight across the gateway
	MaxInFlight int     `json:"maxInFlight"` // the cap
	Requests    int64   `json:"requests"`    // HTTP POSTs being handled
	Sessions    int     `json:"sessions"`    // downstream sessions
	// IsolatedSessions counts the upstream sessions held by downstream
	// sessions of isolated servers (connecting included), capped at
	// MaxIsolatedSessions.
	IsolatedSessions    int            `json:"isolatedSessions"`
	MaxIsolatedSessions int            `json:"maxIsolatedSessions"`
	Draining            bool           `json:"draining"`
	Servers             []ServerStatus `json:"servers"`
	At                  time.Time      `json:"at"`
	// Store is the shared catalog store's state over every pool that uses
	// one (mcpool.Config.CatalogStore): "" when none does, "ok", or
	// "failing" while a pool's last store operation failed and it serves
	// from its local cache. StoreHits counts lists read from the store
	// instead of a server, StoreErrors failed store operations.
	Store       string `json:"store,omitempty"`
	StoreHits   uint64 `json:"storeHits"`
	StoreErrors uint64 `json:"storeErrors"`
	// Connects is the gateway-wide connect limiter's figures
	// (Options.ConnectLimiter): connects of stdio servers in flight and
	// queued, and how long they waited.
	Connects mcpool.ConnectLimiterStats `json:"connects"`
}

// ServerStatus is one server's (or one replica's) row.
type ServerStatus struct {
	Name string `json:"name"`
	Mode Mode   `json:"mode,omitempty"`
	// Status, Health and Score are mcpool's judgement of the server's
	// pools (mcpool.Stats): Health is connected only when Status is
	// healthy, and unavailable (score 0) exactly when Status is; with no
	// session or its breaker open a server scores below
	// mcpool.HealthyScore.
	Status      string  `json:"status"`      // healthy, degraded, unavailable
	Health      string  `json:"health"`      // connected, connecting, reconnecting, degraded, unavailable (mcpool.Health)
	Score       float64 `json:"healthScore"` // mcpool's health score, 0..1
	Breaker     string  `json:"breaker"`     // closed, open, half-open, disabled
	Sessions    int     `json:"sessions"`
	Active      int     `json:"active"`
	Idle        int     `json:"idle"`
	Connecting  int     `json:"connecting"`
	InFlight    int64   `json:"inFlight"`    // calls in flight (gateway's count for a server, the pool's for a replica)
	Waiters     int64   `json:"waiters"`     // callers queued at the gateway plus in the pools
	Queued      int64   `json:"queued"`      // callers queued at the gateway for a slot
	Utilization float64 `json:"utilization"` // calls in flight / (sessions × MaxCallsPerSession), 0..1
	windowFigures
	// Connects is the server's own connect limiter's figures.
	Connects *mcpool.ConnectLimiterStats `json:"connects,omitempty"`
	Refused  int64                       `json:"refused"`    // calls refused as overloaded
	PoolErrs uint64                      `json:"poolErrors"` // the pools' error count (connects and calls)
	Tools    int                         `json:"tools"`
	Detail   string                      `json:"detail,omitempty"`
	// ListError is why the latest listing of the server's tools, prompts
	// or resources failed, each distinct error once; "" when it worked.
	ListError string         `json:"listError,omitempty"`
	Replicas  []ServerStatus `json:"replicas,omitempty"`
}

// Status returns a snapshot. It is cheap (no I/O) and safe at any time.
func (g *Gateway) Status() Status {
	st := Status{Ready: g.Ready(), UptimeSec: time.Since(g.started).Seconds(), InFlight: g.adm.inFlight.Load(),
		MaxInFlight: g.opts.MaxInFlight, Requests: g.requests.Load(), At: time.Now().UTC()}
	for range g.mcp.Sessions() {
		st.Sessions++
	}
	st.Draining = !st.Ready
	st.Connects = g.opts.ConnectLimiter.Stats()
	g.iso.mu.Lock()
	st.IsolatedSessions, st.MaxIsolatedSessions = g.iso.n, g.opts.MaxIsolatedSessions
	g.iso.mu.Unlock()
	for _, srv := range g.set.Load().servers {
		st.Servers = append(st.Servers, g.redactStatus(g.serverStatus(srv))) // redact.go
		g.storeStatus(&st, srv)
	}
	return st
}

// storeStatus adds srv's pools' catalog store figures to st.
func (g *Gateway) storeStatus(st *Status, srv *server) {
	var pools []mcpool.Stats
	if srv.Replicas != nil {
		for _, r := range srv.Replicas() {
			pools = append(pools, r.Stats)
		}
	}
	if len(pools) == 0 && srv.Upstream != nil {
		pools = append(pools, srv.Upstream.Stats())
	}
	for _, ps := range pools {
		if ps.Store == "" {
			continue
		}
		st.StoreHits += ps.StoreHits
		st.StoreErrors += ps.StoreErrors
		if st.Store != "failing" {
			st.Store = ps.Store
		}
	}
}

// serverStatus reads srv's row. Status, Health, HealthScore and Breaker
// are what mcpool judged for the server's pools (one pool, a Group's
// replicas, a keyed pool's identities or the isolated sessions with the
// catalog pool, summed by mcpool.SumStats): the gateway shows them and
// never judges them again.
func (g *Gateway) serverStatus(srv *server) ServerStatus {
	row := ServerStatus{Name: srv.name, Mode: srv.Mode, InFlight: srv.inFlight.Load(), Refused: srv.refused.Load(),
		windowFigures: srv.win.figures(g.started)}
	row.Waiters = srv.queued.Load()
	if lim := srv.Config.ConnectLimiter; lim != nil {
		cs := lim.Stats()
		row.Connects = &cs
	}
	row.Queued = row.Waiters
	perSession := orInt(srv.Config.MaxCallsPerSession, mcpool.DefaultMaxCallsPerSession)
	var pools []mcpool.Stats // the pools whose sessions the row counts
	var judged mcpool.Stats  // the Stats whose judgement the row shows
	switch srv.Mode {
	case ModeShared:
		judged = srv.Upstream.Stats()
		pools = append(pools, judged)
	case ModeIsolated:
		own, open := g.isolatedPools(srv)
		for _, p := range own {
			pools = append(pools, p.Stats())
		}
		row.Detail = itoa(len(own)) + " downstream sessions with their own upstream session, " + itoa(len(srv.spares)) + " spares warm; " +
			itoa(open) + " of " + itoa(g.opts.MaxIsolatedSessions) + " isolated sessions open across servers"
		// The catalog pool speaks for the server with the downstream
		// sessions' own pools; its breaker is the one shown.
		catalog := srv.Upstream.Stats()
		judged = mcpool.SumStats(append([]mcpool.Stats{catalog}, pools...)...)
		judged.Breaker = catalog.Breaker
	case ModePassthrough:
		ks := srv.keyed.Stats()
		row.Sessions, row.InFlight, row.Waiters = ks.Sessions, max(row.InFlight, int64(ks.CallsInFlight)), row.Waiters+int64(ks.Waiters)
		row.Active = min(ks.Sessions, ks.CallsInFlight)
		row.Idle = ks.Sessions - row.Active
		row.Detail = itoa(ks.Identities) + " credentials with their own pool"
		if ks.Sessions > 0 {
			row.Utilization = float64(ks.CallsInFlight) / float64(ks.Sessions*perSession)
		}
		judged = srv.keyed.PoolStats()
		judged.Breaker = "per identity"
	}
	row.Status, row.Health, row.Score, row.Breaker = string(judged.Status), string(judged.Health), judged.HealthScore, judged.Breaker
	var poolInFlight int
	for _, ps := range pools {
		row.Sessions += ps.Sessions
		row.Active += ps.ActiveSessions
		row.Idle += ps.IdleSessions
		row.Connecting += ps.Connecting
		row.Waiters += int64(ps.Waiters)
		row.PoolErrs += ps.Errors
		poolInFlight += ps.CallsInFlight
	}
	if row.Sessions > 0 && len(pools) > 0 {
		row.Utilization = float64(poolInFlight) / float64(row.Sessions*perSession)
	}
	srv.mu.Lock()
	row.Tools = len(srv.tools)
	row.ListError = errorText(srv.listErr)
	srv.mu.Unlock()
	if srv.Replicas != nil {
		for _, r := range srv.Replicas() {
			ps := r.Stats
			rr := ServerStatus{Name: r.Name, Status: string(ps.Status), Health: string(ps.Health), Score: ps.HealthScore, Breaker: ps.Breaker, Sessions: ps.Sessions,
				Active: ps.ActiveSessions, Idle: ps.IdleSessions, Connecting: ps.Connecting,
				InFlight: int64(ps.CallsInFlight), Waiters: int64(ps.Waiters), PoolErrs: ps.Errors}
			if ps.Sessions > 0 {
				rr.Utilization = float64(ps.CallsInFlight) / float64(ps.Sessions*perSession)
			}
			row.Replicas = append(row.Replicas, rr)
		}
	}
	return row
}

// errorText returns err's message with each distinct error once: the
// errors joined in err (errors.Join, at any depth) are split, repeats
// dropped, and the rest joined with "; " in their order. Messages that
// differ only in their numbers ("after 45 failed connects (next try in
// 23ms)", "after 46 ... 1s") are one error, shown as it came first. A
// server that is down, failing its tools, prompts and resources lists
// alike, reads as one error. "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	var msgs, seen []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			subs := j.Unwrap()
			texts := make([]string, 0, len(subs))
			for _, e := range subs {
				if e != nil {
					texts = append(texts, e.Error())
				}
			}
			// Only a plain join is split: an error that wraps several
			// (fmt.Errorf with two %w) has words of its own.
			if strings.Join(texts, "\n") == err.Error() {
				for _, e := range subs {
					if e != nil {
						walk(e)
					}
				}
				return
			}
		}
		m := err.Error()
		if key := withoutNumbers(m); !slices.Contains(seen, key) {
			msgs, seen = append(msgs, m), append(seen, key)
		}
	}
	walk(err)
	return strings.Join(msgs, "; ")
}

// withoutNumbers returns s with each number replaced by "#": a run of
// digits with its decimal points and, for a duration ("1m2.5s", "23ms"),
// its units.
func withoutNumbers(s string) string {
	var b strings.Builder
	digits := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9' || digits && strings.ContainsRune(".nuµmsh", r):
			if !digits {
				b.WriteByte('#')
			}
			digits = true
		default:
			b.WriteRune(r)
			digits = false
		}
	}
	return b.String()
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (g *Gateway) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(g.Status())
}

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"pct": func(f float64) string { b, _ := json.Marshal(int(f*100 + 0.5)); return string(b) + "%" },
}).Parse(statusHTML))

func (g *Gateway) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = statusPage.Execute(w, g.Status())
}
