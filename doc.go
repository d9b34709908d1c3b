// Package mcpool keeps Model Context Protocol client sessions warm and
// shares them between callers.
//
// An agent that opens a new MCP session for every tool call pays a connect,
// an initialize (or the 2026-07-28 server/discover probe) and often a
// tools/list each time: milliseconds on loopback, hundreds of milliseconds
// to a remote server. A [Pool] connects sessions once, with the official Go
// SDK (github.com/modelcontextprotocol/go-sdk), and multiplexes calls over
// them: one session carries up to [Config.MaxCallsPerSession] calls at once,
// because JSON-RPC tells concurrent calls apart by id.
//
// The shape follows database/sql and puddle: a narrow API ([New],
// [Pool.Start], [Pool.Acquire] and [Lease.Release], [Pool.CallTool],
// [Pool.ListTools], [Pool.Stats], [Pool.Close]), sentinel errors for
// errors.Is, a mutex that only guards O(1) bookkeeping (no I/O under it), and
// connects that run on a context the pool owns, so a caller who gives up
// never wastes a half-made session.
//
// Choosing a session: the oldest session with room. Spare sessions therefore
// go idle. A new session is connected only when every session is full and
// the pool is under [Config.MaxSessions]; callers then queue first in, first
// out.
package mcpool
