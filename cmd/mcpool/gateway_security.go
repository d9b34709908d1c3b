package main

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/oauth"
)

// gatewaySecurity makes the gateway's resource server (from the flags, else
// the config's gateway.auth) and audit log, and checks that a gateway
// listening off loopback authenticates its clients.
func gatewaySecurity(ctx context.Context, cfg *config.GatewayAuth, issuer, audience, auditLog, token, listen string, offLoopback, stdio bool,
	stderr io.Writer, log *slog.Logger) (*oauth.ResourceServer, *oauth.Auditor, func(), error) {
	var a config.GatewayAuth
	if cfg != nil {
		a = *cfg
	}
	if issuer != "" {
		a.Issuer = issuer
	}
	if audience != "" {
		a.Audience = audience
	}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var rs *oauth.ResourceServer
	if a.Issuer != "" {
		if stdio {
			return nil, nil, nil, usageErrorf("OAuth (--auth-issuer or gateway.auth) protects the HTTP endpoint: it does not apply to --stdio")
		}
		if token != "" {
			return nil, nil, nil, usageErrorf("--token and OAuth (--auth-issuer or gateway.auth) exclude each other: choose one")
		}
		if a.Audience == "" {
			if offLoopback {
				return nil, nil, nil, usageErrorf("--listen %s is not a loopback address: set --auth-audience (or gateway.auth.audience) to the gateway's public /mcp URL, which tokens must be issued for", listen)
			}
			a.Audience = "http://" + listen + "/mcp"
		}
		var err error
		rs, err = oauth.New(ctx, oauth.Config{Issuer: a.Issuer, Audience: a.Audience, JWKSURL: a.JWKSURL, IntrospectionURL: a.IntrospectionURL,
			ClientID: a.ClientID, ClientSecret: a.ClientSecret, Scopes: a.Scopes, Logger: log})
		var ce *oauth.ConfigError
		if errors.As(err, &ce) {
			// The config file's are checked as it loads: this is a flag's.
			switch ce.Field {
			case "Config.Issuer":
				return nil, nil, nil, usageErrorf("--auth-issuer: %s", ce.Reason)
			case "Config.Audience":
				return nil, nil, nil, usageErrorf("--auth-audience: %s", ce.Reason)
			}
		}
		if err != nil {
			return nil, nil, nil, usageErrorf("%v", err)
		}
		closers = append(closers, func() { _ = rs.Close() })
	} else if a.Audience != "" {
		return nil, nil, nil, usageErrorf("--auth-audience needs --auth-issuer (or gateway.auth.issuer)")
	} else if offLoopback && token == "" {
		return nil, nil, nil, usageErrorf("--listen %s is not a loopback address: set --auth-issuer (OAuth), or --token or $%s, so that only your clients get in", listen, tokenEnv)
	}
	var audit *oauth.Auditor
	switch auditLog {
	case "":
	case "-":
		audit = oauth.NewAuditor(stderr)
	default:
		f, err := os.OpenFile(auditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		closers = append(closers, func() { _ = f.Close() })
		audit = oauth.NewAuditor(f)
	}
	return rs, audit, closeAll, nil
}

// gatewayRateLimit is the config's gateway.rateLimit.perIdentity.
func gatewayRateLimit(rl *config.RateLimit) *gateway.RateLimit {
	if rl == nil {
		return nil
	}
	return &gateway.RateLimit{Rate: rl.Rate, Burst: rl.Burst}
}

// defaultAudience reports whether the gateway is a resource server whose
// audience is its own listen address's /mcp URL.
func defaultAudience(cfg *config.GatewayAuth, issuer, audience string) bool {
	if cfg != nil {
		issuer, audience = cmp.Or(issuer, cfg.Issuer), cmp.Or(audience, cfg.Audience)
	}
	return issuer != "" && audience == ""
}

// addGatewaySecrets records the gateway section's credentials (the
// introspection and token exchange client secrets) for the command's
// redactor.
func addGatewaySecrets(g config.Gateway) {
	if a := g.Auth; a != nil {
		addSecret(a.ClientSecret)
	}
	for _, s := range g.Servers {
		if x := s.TokenExchange; x != nil {
			addSecret(x.ClientSecret)
		}
	}
}
