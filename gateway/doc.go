// Package gateway serves pooled MCP sessions to any MCP client: one
// streamable HTTP endpoint (or one stdio server) that aggregates several
// upstream servers, with warm, multiplexed, self-healing sessions to each.
//
// A [Gateway] is itself an MCP server, built with the go-sdk. It lists the
// tools, prompts and resources of every upstream server, and routes
// tools/call, prompts/get and resources/read to the server that owns the
// name. Tools and prompts are named, in every mode, by the rule of a
// [mcpool.Group] (Options.Naming, an [mcpool.Naming]): the gateway lists
// the names the Group lists, and finds the server and its own name again
// by the same rule; resources keep their URIs. Upstream
// list_changed notifications reach downstream sessions; progress
// notifications travel down and cancellation travels up.
//
// # Identity and isolation
//
// Each server is served in one of three modes ([Mode]):
//
//   - [ModeShared]: every client's calls share one multiplexed pool that
//     uses the gateway's own credentials. Cheapest, and right only for
//     servers that keep no per-session state (most tool servers that wrap an
//     API or a database with one account): a value one client sets is seen
//     by the next.
//   - [ModePassthrough]: the downstream request's credentials (the headers
//     named by ForwardHeaders, "Authorization" by default) are forwarded,
//     and upstream sessions and catalogs are partitioned per credential
//     ([mcpool.Keyed]): a session or a list made with one client's
//     credentials is never used for another. A request that carries no
//     credential is refused rather than served anonymously. Choose it when
//     the upstream server authorizes each user itself.
//   - [ModeIsolated]: each downstream session gets upstream sessions of its
//     own, taken from a few pre-warmed spares (so the connect cost stays off
//     the caller's path) and closed when the downstream session ends or idles
//     out. Choose it for stateful servers (a browser, a REPL, a shell), where
//     state must never leak between clients. It is the default: sharing has
//     to be asked for. A 2026-07-28 downstream client has no session, so each
//     of its requests gets a fresh upstream session. Options.MaxIsolatedSessions
//     caps these upstream sessions across servers.
//
// # Backpressure
//
// The gateway caps the calls in flight across all servers
// (Options.MaxInFlight) and the callers queued per server
// (Server.MaxQueued). A call beyond both is refused at once with the
// JSON-RPC error [CodeOverloaded]; the HTTP layer answers 429 with
// Retry-After when it refuses a request before reading it; a server whose
// circuit breaker is open answers [CodeUnavailable] at once. Nothing queues
// without bound.
//
// # Operations
//
// [Gateway.Handler] serves /mcp (both protocol eras: 2025-11-25 sessions
// and 2026-07-28 stateless requests), /healthz, /readyz, a live status page
// at / and its figures at /status.json; with Options.Token, all but /healthz
// and /readyz need the token. [Gateway.Drain] drops readiness,
// refuses new calls and waits for calls in flight; [Gateway.Close] then ends
// downstream sessions and closes the upstream sessions the gateway made.
package gateway
