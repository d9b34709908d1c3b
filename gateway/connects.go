package gateway

import "github.com/mcpool/mcpool"

// ServerConnectLimiter returns the connect limiter for one server's pools
// (the Group's, the isolated sessions', a passthrough server's keyed
// pools): cfg's own ConnectLimiter when it has one, else a new limiter of
// its own sized to the server's transport. A stdio (or NewTransport)
// server's limiter has mcpool.DefaultConnectLimit() turns under shared, so
// that the processes the gateway starts at once are capped per server and
// across servers; an HTTP server's has four times that and no parent, as
// its connects cost this machine little. shared may be nil.
//
// To share the caps with a Group serving the same servers, set each
// ServerConfig's Config.ConnectLimiter (and its Replicas') to the result
// before making the Group, and Options.ConnectLimiter to shared.
func ServerConnectLimiter(cfg mcpool.Config, shared *mcpool.ConnectLimiter) *mcpool.ConnectLimiter {
	if cfg.ConnectLimiter != nil {
		return cfg.ConnectLimiter
	}
	if cfg.URL != "" || cfg.SSEURL != "" {
		return mcpool.NewConnectLimiter(4*mcpool.DefaultConnectLimit(), nil)
	}
	return mcpool.NewConnectLimiter(0, shared)
}
