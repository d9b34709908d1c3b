package gateway

// RelayHandled returns how many tools/call requests g's fast path served.
func RelayHandled(g *Gateway) int64 { return g.fast.handled.Load() }

// ListCacheHits returns how many answers g served from its list cache.
func ListCacheHits(g *Gateway) uint64 { return g.lists.hits.Load() }
