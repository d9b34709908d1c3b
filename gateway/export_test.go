package gateway

// RelayHandled returns how many tools/call requests g's fast path served.
func RelayHandled(g *Gateway) int64 { return g.fast.handled.Load() }
