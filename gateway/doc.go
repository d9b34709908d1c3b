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
//   - [ModePassthrough]: each caller's own upstream credentials are used:
//     the downstream headers named by ForwardHeaders (never Authorization)
//     and, with Server.TokenExchange, a token issued for the upstream in
//     exchange for the caller's; upstream sessions and catalogs are
//     partitioned per credential and grant (user, client, scopes;
//     [mcpool.Keyed]): a session or
//     a list made for one caller is never used for another. A request that
//     carries no credential is refused rather than served anonymously.
//     Choose it when the upstream server authorizes each user itself.
//   - [ModeIsolated]: each downstream session gets upstream sessions of its
//     own, taken from a few pre-warmed spares (so the connect cost stays off
//     the caller's path) and closed when the downstream session ends or idles
//     out. Choose it for stateful servers (a browser, a REPL, a shell), where
//     state must never leak between clients. It is the default: sharing has
//     to be asked for. A 2026-07-28 downstream client has no session, so each
//     of its requests gets a fresh upstream session. Options.MaxIsolatedSessions
//     caps these upstream sessions across servers.
//
// # Security
//
// With Options.Auth the gateway is an OAuth 2.1 resource server, as the MCP
// authorization specification (revision 2025-11-25, "Authorization")
// makes every HTTP MCP server: it serves its Protected Resource Metadata
// (RFC 9728), refuses requests without a valid access token issued for it
// (401, or 403 insufficient_scope) and knows each caller's identity. That
// identity drives Server.Access (who sees a server at all), the
// per-identity Options.RateLimit, Server.TokenExchange and the audit log
// (Options.Audit). Server.Tools filters tools by name for every caller.
//
// No token passthrough: the Authorization header of a downstream request
// is never sent upstream, in any mode. The specification's security best
// practices ("Token Passthrough") forbid it: the upstream could not tell a
// token meant for the gateway from one meant for it (a confused deputy), and
// a token stolen from the gateway would open every server behind it. Per-user
// upstream access uses token exchange (RFC 8693) instead.
//
// Credentials never show: the gateway's log lines, the errors it returns,
// its status and its metrics pass through one redactor that knows every
// secret of its servers' configurations (header and environment values, URL
// passwords and query values, tokens, client secrets).
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
// at / and its figures at /status.json; with Options.Token (or
// Options.Auth), all but /healthz and /readyz need the token. [Gateway.Drain] drops readiness,
// refuses new calls and waits for calls in flight; [Gateway.Close] then ends
// downstream sessions and closes the upstream sessions the gateway made.
package gateway
