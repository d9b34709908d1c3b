package config

import (
	"maps"

	"github.com/mcpool/mcpool"
)

// place is a kind of object in the file, for telling where a key of ours
// written in the wrong one belongs.
type place int

const (
	atTop           place = iota // the file's top level
	atEntry                      // mcpServers.NAME or servers.NAME
	atMCPool                     // mcpool
	atDefaults                   // mcpool.defaults
	atMCPoolServer               // mcpool.servers.NAME
	atGateway                    // gateway
	atGatewayServer              // gateway.servers.NAME
	atAuth                       // mcpool.servers.NAME.auth
)

// The keys each object takes.
var (
	entryKeys         = jsonKeys(&fileEntry{})
	mcpoolKeys        = jsonKeys(&mcpoolSection{})
	poolKeys          = jsonKeys(&fileSettings{})
	gatewayKeys       = jsonKeys(&gatewaySection{})
	gatewayServerKeys = jsonKeys(&gatewayServerSection{})
	authKeys          = jsonKeys(&mcpool.ServerAuth{})
	allKeys           = union(entryKeys, mcpoolKeys, poolKeys, gatewayKeys, gatewayServerKeys, authKeys)
)

func union(sets ...map[string]bool) map[string]bool {
	all := map[string]bool{}
	for _, s := range sets {
		maps.Copy(all, s)
	}
	return all
}

// belongs returns where key, written in an object of kind p (of server,
// or "" for none), belongs, when it is one of ours that p does not take;
// "" when it is not ours (another client's, or a misspelling).
func (l *loader) belongs(p place, key, server string) string {
	name := server
	if name == "" {
		name = "NAME"
	}
	switch {
	case p == atTop:
		switch {
		case key == "servers":
			return "" // VS Code's
		case mcpoolKeys[key]:
			return "mcpool"
		case gatewayKeys[key]:
			return "gateway"
		case poolKeys[key]:
			return "mcpool.defaults or mcpool.servers.NAME"
		case gatewayServerKeys[key]:
			return "gateway.servers.NAME"
		}
	case p == atEntry:
		switch {
		case poolKeys[key]:
			return "mcpool.servers." + name
		case gatewayServerKeys[key]:
			return "gateway.servers." + name
		}
	case p == atMCPool:
		switch {
		case gatewayKeys[key]:
			return "gateway"
		case poolKeys[key]:
			return "mcpool.defaults or mcpool.servers.NAME"
		case gatewayServerKeys[key]:
			return "gateway.servers.NAME"
		}
	case p == atDefaults || p == atMCPoolServer:
		switch {
		case gatewayServerKeys[key]:
			return "gateway.servers." + name
		case entryKeys[key]:
			return l.entryAt(name)
		case key == "separator":
			return "mcpool"
		}
	case p == atGateway:
		switch {
		case mcpoolKeys[key]:
			return "mcpool"
		case poolKeys[key]:
			return "mcpool.defaults or mcpool.servers.NAME"
		case gatewayServerKeys[key]:
			return "gateway.servers.NAME"
		}
	case p == atGatewayServer:
		switch {
		case poolKeys[key]:
			return "mcpool.servers." + name
		case entryKeys[key]:
			return l.entryAt(name)
		}
	}
	return ""
}
