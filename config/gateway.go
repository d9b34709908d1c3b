package config

import (
	"encoding/json"
	"time"
)

// gatewaySection is the "gateway" object.
type gatewaySection struct {
	MaxInFlight         int             `json:"maxInFlight"`
	MaxIsolatedSessions int             `json:"maxIsolatedSessions"`
	Redis               string          `json:"redis"`
	Stateless           bool            `json:"stateless"`
	Unprefixed          bool            `json:"unprefixed"`
	QueueWait           fileDuration    `json:"queueWait"`
	CallTimeout         fileDuration    `json:"callTimeout"`
	Servers             json.RawMessage `json:"servers"`
}

// gatewayServerSection is gateway.servers.NAME.
type gatewayServerSection struct {
	Mode           string   `json:"mode"`
	ForwardHeaders []string `json:"forwardHeaders"`
	Spares         int      `json:"spares"`
	MaxQueued      int      `json:"maxQueued"`
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
	for _, n := range []struct {
		key string
		neg bool
	}{{"maxInFlight", sec.MaxInFlight < 0}, {"maxIsolatedSessions", sec.MaxIsolatedSessions < 0},
		{"queueWait", sec.QueueWait < 0}, {"callTimeout", sec.CallTimeout < 0}} {
		if n.neg {
			return l.errf("", "gateway."+n.key, "is negative (leave it out for the default)")
		}
	}
	g := &l.out.Gateway
	*g = Gateway{
		MaxInFlight:         sec.MaxInFlight,
		MaxIsolatedSessions: sec.MaxIsolatedSessions,
		Redis:               sec.Redis,
		Stateless:           sec.Stateless,
		Unprefixed:          sec.Unprefixed,
		QueueWait:           time.Duration(sec.QueueWait),
		CallTimeout:         time.Duration(sec.CallTimeout),
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
		switch s.Mode {
		case "", ModeShared, ModeIsolated, ModePassthrough:
		default:
			return l.errf(name, field+".mode", "%q is not a mode (shared, passthrough or isolated)", s.Mode)
		}
		if g.Servers == nil {
			g.Servers = map[string]GatewayServer{}
		}
		g.Servers[name] = GatewayServer(s)
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
		}
		if s.ForwardHeaders != nil && s.Mode != ModePassthrough {
			l.warnf(sc.Name, "%s.forwardHeaders applies to mode passthrough only: it is ignored", field)
		}
		if s.Spares != 0 && s.Mode != "" && s.Mode != ModeIsolated {
			l.warnf(sc.Name, "%s.spares applies to mode isolated only: it is ignored", field)
		}
	}
	return l.validate()
}
