package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mcpool/mcpool/oauth"
)

// gatewaySection is the "gateway" object.
type gatewaySection struct {
	MaxInFlight         int          `json:"maxInFlight"`
	MaxIsolatedSessions int          `json:"maxIsolatedSessions"`
	Redis               string       `json:"redis"`
	Stateless           bool         `json:"stateless"`
	AdvertiseURL        string       `json:"advertiseURL"`
	Unprefixed          bool         `json:"unprefixed"`
	QueueWait           fileDuration `json:"queueWait"`
	CallTimeout         fileDuration `json:"callTimeout"`
	Auth                *GatewayAuth `json:"auth"`
	RateLimit           *struct {
		PerIdentity *RateLimit `json:"perIdentity"`
	} `json:"rateLimit"`
	Servers json.RawMessage `json:"servers"`
}

// gatewayServerSection is gateway.servers.NAME.
type gatewayServerSection struct {
	Mode           string         `json:"mode"`
	ForwardHeaders []string       `json:"forwardHeaders"`
	Spares         *int           `json:"spares"` // 0 in the file is none; absent the default
	MaxQueued      int            `json:"maxQueued"`
	Tools          ToolFilter     `json:"tools"`
	Access         AccessRule     `json:"access"`
	TokenExchange  *TokenExchange `json:"tokenExchange"`
	RateLimit      *RateLimit     `json:"rateLimit"`
}

// GatewayAuth is gateway.auth: the OAuth 2.1 authorization server whose
// access tokens the gateway accepts, as a resource server.
type GatewayAuth struct {
	// Issuer is the authorization server's issuer URL (https; http only on
	// a loopback host); its metadata (RFC 8414, then OpenID discovery)
	// gives the key set.
	Issuer string `json:"issuer"`
	// Audience is the gateway's canonical URI, its public /mcp URL, which
	// tokens must be issued for; "" means the listen address's /mcp URL,
	// which the gateway accepts only on loopback.
	Audience string `json:"audience"`
	// JWKSURL is the issuer's key set (https; http only on loopback), ""
	// to discover it.
	JWKSURL string `json:"jwksURL"`
	// IntrospectionURL validates opaque tokens (RFC 7662; https, http only
	// on loopback); "" accepts JWTs only. It needs ClientID and
	// ClientSecret.
	IntrospectionURL string `json:"introspectionURL"`
	// ClientID and ClientSecret authenticate the gateway to the
	// introspection endpoint (HTTP Basic), which RFC 7662 section 2.1 has
	// authorize its callers. The secret is best given as ${VAR}; the
	// gateway hides it in its logs and errors.
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// Scopes every token must carry (403 insufficient_scope otherwise).
	Scopes []string `json:"scopes"`
}

// gatewayAuthKeys are the keys of gateway.auth by the oauth.Config field that
// holds them.
var gatewayAuthKeys = map[string]string{"Config.Issuer": "issuer", "Config.Audience": "audience", "Config.JWKSURL": "jwksURL",
	"Config.IntrospectionURL": "introspectionURL", "Config.ClientID": "clientID", "Config.ClientSecret": "clientSecret"}

// RateLimit is a token bucket per identity: Rate calls per second, bursts
// of Burst.
type RateLimit struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// ToolFilter is gateway.servers.NAME.tools: path.Match globs of the
// server's own tool names; Deny wins over Allow, and a non-empty Allow
// serves only the tools it matches.
type ToolFilter struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// AccessRule is gateway.servers.NAME.access: who may see and call the
// server. The caller's token must carry every scope of Scopes, and its
// subject must match one glob of Subjects when it has any.
type AccessRule struct {
	Scopes   []string `json:"scopes"`
	Subjects []string `json:"subjects"`
}

// TokenExchange is gateway.servers.NAME.tokenExchange: the OAuth 2.0
// Token Exchange (RFC 8693) that trades a caller's validated token for one
// issued to the upstream (Audience).
type TokenExchange struct {
	TokenURL     string   `json:"tokenURL"`
	ClientID     string   `json:"clientID"`
	ClientSecret string   `json:"clientSecret"`
	Audience     string   `json:"audience"`
	Scopes       []string `json:"scopes"`
}

// gateway decodes the "gateway" object (expanded) into l.out.Gateway.
func (l *loader) gateway(raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var sec gatewaySection
	if err := l.decodeObject(raw, &sec, "", "gateway", atGateway); err != nil {
		return err
	}
	if err := l.nestedKeys(raw, "", "gateway", map[string]any{"auth": &GatewayAuth{}, "rateLimit": &struct {
		PerIdentity *RateLimit `json:"perIdentity"`
	}{}}); err != nil {
		return err
	}
	if _, vals, err := objectKeys(raw); err == nil && vals["rateLimit"] != nil {
		if err := l.nestedKeys(vals["rateLimit"], "", "gateway.rateLimit", map[string]any{"perIdentity": &RateLimit{}}); err != nil {
			return err
		}
	}
	for _, n := range []struct {
		key string
		neg bool
	}{{"maxInFlight", sec.MaxInFlight < 0}, {"maxIsolatedSessions", sec.MaxIsolatedSessions < 0},
		{"queueWait", sec.QueueWait < 0}, {"callTimeout", sec.CallTimeout < 0}} {
		if n.neg {
			return l.errf("", "gateway."+n.key, "is negative (leave it out for the default)")
		}
	}
	if a := sec.AdvertiseURL; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return l.errf("", "gateway.advertiseURL", "must be this replica's MCP endpoint as the other replicas reach it, http://HOST:PORT/mcp")
		}
	}
	g := &l.out.Gateway
	*g = Gateway{
		MaxInFlight:         sec.MaxInFlight,
		MaxIsolatedSessions: sec.MaxIsolatedSessions,
		Redis:               sec.Redis,
		Stateless:           sec.Stateless,
		AdvertiseURL:        sec.AdvertiseURL,
		Unprefixed:          sec.Unprefixed,
		QueueWait:           time.Duration(sec.QueueWait),
		CallTimeout:         time.Duration(sec.CallTimeout),
		Auth:                sec.Auth,
	}
	if sec.RateLimit != nil {
		g.RateLimit = sec.RateLimit.PerIdentity
	}
	if err := l.checkSecurity(g.Auth, g.RateLimit, "", "gateway"); err != nil {
		return err
	}
	if sec.Servers == nil {
		return nil
	}
	names, vals, err := objectKeys(sec.Servers)
	if err != nil {
		return l.errf("", "gateway.servers", "must be an object of settings by server name")
	}
	for _, name := range names {
		if !l.enabled[name] {
			continue // disabled
		}
		field := "gateway.servers." + name
		var s gatewayServerSection
		if err := l.decodeObject(vals[name], &s, name, field, atGatewayServer); err != nil {
			return err
		}
		if err := l.nestedKeys(vals[name], name, field, map[string]any{"tools": &ToolFilter{}, "access": &AccessRule{},
			"tokenExchange": &TokenExchange{}, "rateLimit": &RateLimit{}}); err != nil {
			return err
		}
		switch s.Mode {
		case "", ModeShared, ModeIsolated, ModePassthrough:
		default:
			return l.errf(name, field+".mode", "%q is not a mode (shared, passthrough or isolated)", s.Mode)
		}
		if err := l.checkServerSecurity(name, field, &s); err != nil {
			return err
		}
		if g.Servers == nil {
			g.Servers = map[string]GatewayServer{}
		}
		g.Servers[name] = GatewayServer{Mode: s.Mode, ForwardHeaders: s.ForwardHeaders, Spares: spares(s.Spares), MaxQueued: s.MaxQueued,
			Tools: s.Tools, Access: s.Access, TokenExchange: s.TokenExchange, RateLimit: s.RateLimit}
	}
	return nil
}

// check applies the rules that join sections, and then the Group's own.
func (l *loader) check() error {
	gc, g := &l.out.Group, &l.out.Gateway
	// The Group owns naming: gateway.unprefixed is its Unprefixed, checked
	// (exactly one server) by GroupConfig.Validate below.
	gc.Unprefixed = g.Unprefixed
	for _, sc := range gc.Servers {
		s := g.Servers[sc.Name]
		field := "gateway.servers." + sc.Name
		stdio := sc.Config.Command != nil
		switch {
		case s.Mode == ModePassthrough && sc.Auth != nil:
			return l.errf(sc.Name, "mcpool.servers."+sc.Name+".auth", `a passthrough server uses each client's own credentials, not the gateway's: remove "auth" or choose another mode`)
		case s.Mode == ModePassthrough && stdio:
			return l.errf(sc.Name, field+".mode", "passthrough forwards the client's HTTP headers, so it needs an HTTP server (url), not a stdio one")
		case s.Mode == ModePassthrough && len(s.ForwardHeaders) == 0 && s.TokenExchange == nil:
			return l.errf(sc.Name, field, `mode passthrough needs something per caller to send upstream: set "tokenExchange" (per-user tokens issued for the upstream) or "forwardHeaders" (headers other than Authorization, which is never forwarded)`)
		case s.TokenExchange != nil && s.Mode != ModePassthrough:
			return l.errf(sc.Name, field+".tokenExchange", `partitions upstream sessions per caller: set "mode": "passthrough"`)
		}
		if s.ForwardHeaders != nil && s.Mode != ModePassthrough {
			l.warnf(sc.Name, "%s.forwardHeaders applies to mode passthrough only: it is ignored", field)
		}
		if s.Spares > 0 && s.Mode != "" && s.Mode != ModeIsolated {
			l.warnf(sc.Name, "%s.spares applies to mode isolated only: it is ignored", field)
		}
	}
	return l.validate()
}

// checkSecurity checks gateway.auth and a rate limit.
func (l *loader) checkSecurity(a *GatewayAuth, rl *RateLimit, server, field string) error {
	if a != nil {
		if a.Issuer == "" {
			return l.errf(server, field+".auth.issuer", "is required: the URL of the authorization server whose tokens the gateway accepts")
		}
		// The resource server's own rules (oauth.Config.Validate), named
		// by this file's keys. An empty audience is the listen address's
		// /mcp URL, which the command fills in.
		err := oauth.Config{Issuer: a.Issuer, Audience: cmp.Or(a.Audience, "http://127.0.0.1/mcp"), JWKSURL: a.JWKSURL,
			IntrospectionURL: a.IntrospectionURL, ClientID: a.ClientID, ClientSecret: a.ClientSecret}.Validate()
		var ce *oauth.ConfigError
		if errors.As(err, &ce) {
			return l.errf(server, field+".auth."+gatewayAuthKeys[ce.Field], "%s", ce.Reason)
		} else if err != nil {
			return l.errf(server, field+".auth", "%v", err)
		}
		if a.IntrospectionURL == "" && (a.ClientID != "" || a.ClientSecret != "") {
			l.warnf(server, "%s.auth.clientID and clientSecret authenticate the gateway to the introspection endpoint: without introspectionURL they are ignored", field)
		}
	}
	if rl != nil && (rl.Rate <= 0 || rl.Burst < 0) {
		return l.errf(server, field+".rateLimit", "rate must be positive (calls per second) and burst not negative")
	}
	return nil
}

// checkServerSecurity checks a server's tools, access, tokenExchange and
// rateLimit.
func (l *loader) checkServerSecurity(name, field string, s *gatewayServerSection) error {
	for _, h := range s.ForwardHeaders {
		if strings.EqualFold(strings.TrimSpace(h), "Authorization") {
			return l.errf(name, field+".forwardHeaders", "names Authorization, which carries the client's token for the gateway: "+
				"the MCP authorization specification forbids passing it to another server (token passthrough); use \"tokenExchange\", or forward a header of the upstream's own")
		}
	}
	for k, globs := range map[string][]string{"tools.allow": s.Tools.Allow, "tools.deny": s.Tools.Deny, "access.subjects": s.Access.Subjects} {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				return l.errf(name, field+"."+k, "%q is not a glob (path.Match): %v", g, err)
			}
		}
	}
	if x := s.TokenExchange; x != nil {
		if err := oauth.CheckEndpoint(x.TokenURL); err != nil {
			return l.errf(name, field+".tokenExchange.tokenURL", "must be the authorization server's token endpoint: %v", err)
		}
		if x.Audience == "" {
			return l.errf(name, field+".tokenExchange.audience", "is required: the upstream's URI that exchanged tokens are issued for")
		}
	}
	if s.RateLimit != nil && (s.RateLimit.Rate <= 0 || s.RateLimit.Burst < 0) {
		return l.errf(name, field+".rateLimit", "rate must be positive (calls per second) and burst not negative")
	}
	return nil
}

// spares maps the file's "spares" to GatewayServer.Spares: absent is the
// default (0), and 0, which a user writes to mean none, is none (-1).
func spares(n *int) int {
	switch {
	case n == nil:
		return 0
	case *n == 0:
		return -1
	}
	return *n
}
