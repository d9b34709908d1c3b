// Package config reads the MCP server config file that the mcpool command,
// the gateway and programs using [mcpool.Group] share: the file your MCP
// clients already read, with mcpool's settings in sections they ignore.
// This documentation is the reference of that file.
//
//	f, err := config.Load(".mcp.json")
//	if err != nil {
//		return err // one line: file, server, field (*config.FileError)
//	}
//	for _, w := range f.Warnings {
//		log.Print(w) // settings of ours written where they are ignored
//	}
//	g, err := mcpool.NewGroup(f.Group)
//
// [Load] and [Parse] keep no state: they are safe for concurrent use, and
// the [File] they return belongs to the caller.
//
// # Formats
//
// The file is a JSON object holding either or both of:
//
//   - "mcpServers": {NAME: ENTRY, …}, the form Claude Desktop, Cursor and
//     Claude Code (.mcp.json) read;
//   - "servers": {NAME: ENTRY, …}, VS Code's (.vscode/mcp.json).
//
// A name may appear in one of them only. Servers keep the file's order
// ("mcpServers" first), which is the order of merged catalogs. The whole
// file, every section included, is JSON with Comments as VS Code writes
// it: // and /* */ comments and trailing commas are allowed, and errors
// still give the true line and column. Top-level keys other than those
// below (VS Code's "inputs", other clients' settings) are ignored.
//
// # Server entries
//
// An ENTRY is a stdio server or an HTTP server:
//
//	"files":  {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
//	           "env": {"DEBUG": "1"}, "envFile": "files.env", "cwd": "/srv"}
//	"github": {"type": "http", "url": "https://api.example.com/mcp",
//	           "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}}
//
// "type" is "stdio", "http" (also "streamable-http" or "streamableHttp")
// or "sse" (the legacy HTTP+SSE transport). Without it, an entry with
// "command" is stdio and one with "url" streamable HTTP. A stdio server's
// "env" (strings) is added to this process's environment, after the
// KEY=VALUE lines of "envFile" ("#" comments, "export " and quotes
// allowed; a relative path is read from the config file's directory).
// "headers" (strings) are sent on every HTTP request. An entry with
// "disabled": true is left out, and nothing in it or in its settings
// elsewhere is read.
//
// Other keys in an entry are ignored: other clients keep their own
// settings there ("alwaysAllow", "timeout", VS Code's "dev"). A key of
// mcpool's own written there ("replicas", "minSessions", "balance",
// "auth", "mode", "spares", "forwardHeaders", …) is ignored too, and
// reported in File.Warnings with the place it belongs:
//
//	mcp.json: server "x": "replicas" belongs in mcpool.servers.x, not in mcpServers.x: it is ignored there
//
// A key of the "mcpool" or "gateway" sections written at the top level is
// reported the same way.
//
// # Variables
//
// Strings may hold ${VAR}, ${VAR:-default} (the default when VAR is unset
// or empty) or VS Code's ${env:VAR}, read from the environment (or
// Parse's lookup). They are expanded in an entry's command, args, env,
// envFile, cwd, url and headers, and in every string of the "mcpool" and
// "gateway" sections (durations, modes, the redis URL, auth, replicas…);
// never in keys, in other clients' keys, or in disabled servers. A
// variable that is not set is an error, never an empty value sent to a
// server. VS Code's ${input:ID} prompts the user in the editor: mcpool
// cannot, and reports it as unsupported. Variables are expanded in
// strings only: a number is written as a number.
//
// # The "mcpool" section
//
// The pool settings of the Group, which other clients ignore:
//
//	"mcpool": {
//	  "separator": "__",
//	  "defaults": {"maxSessions": 8, "connectTimeout": "20s"},
//	  "servers": {
//	    "search": {"replicas": ["http://10.0.0.1:8080/mcp", "http://10.0.0.2:8080/mcp"],
//	               "balance": "least-loaded", "minSessions": 2},
//	    "github": {"auth": {"token": "${GITHUB_TOKEN}"}}
//	  }
//	}
//
// "separator" joins a server's name and a tool's or prompt's name in
// merged catalogs ([mcpool.GroupConfig].Separator; default "__").
// "defaults" apply to every server, and "servers".NAME to one, over the
// defaults. Each takes, unset meaning the [mcpool.Config] default:
//
//   - minSessions, maxSessions, maxCallsPerSession, failureThreshold:
//     whole numbers (defaults 1, 4, 32, 5);
//   - acquireTimeout, connectTimeout, drainTimeout, toolCacheTTL,
//     healthCheckInterval, pingTimeout, probeOnAcquire,
//     maxSessionLifetime, maxIdleTime, breakerCooldown: Go durations in
//     quotes, such as "30s", "500ms" or "2m" (defaults 30s, 10s, 10s, 5m,
//     30s, 5s, off, off, 5m, 1s; a negative toolCacheTTL,
//     healthCheckInterval or maxIdleTime turns the feature off);
//   - protocolVersion: the MCP protocol version to ask for, such as
//     "2025-11-25";
//   - balance: how calls spread over a server's replicas, "least-loaded"
//     (the default), "round-robin" or "failover".
//
// Per server only:
//
//   - replicas: for an HTTP server, a list of URLs, which replace its
//     "url" (other clients still use that one: list it too if it is one of
//     the replicas); for a stdio server, a count of pools running the
//     command;
//   - auth: the server's credentials, {"token": …} (a bearer token),
//     {"oauth": true} (sign in through a browser, optionally with
//     "clientId" or "clientMetadataUrl"), or {"clientId": …,
//     "clientSecret": …} (the client-credentials grant); HTTP servers only
//     (see [mcpool.ServerAuth]).
//
// # The "gateway" section
//
// The settings of "mcpool gateway", which other clients and the other
// commands ignore:
//
//	"gateway": {
//	  "maxInFlight": 256,
//	  "callTimeout": "2m",
//	  "redis": "redis://127.0.0.1:6379/0",
//	  "auth": {"issuer": "https://auth.example.com", "audience": "https://mcp.example.com/mcp", "scopes": ["mcp:tools"]},
//	  "rateLimit": {"perIdentity": {"rate": 5, "burst": 20}},
//	  "servers": {
//	    "search":  {"mode": "shared", "maxQueued": 64, "tools": {"deny": ["*_delete"]}},
//	    "browser": {"mode": "isolated", "spares": 2, "access": {"scopes": ["browser"]}},
//	    "github":  {"mode": "passthrough", "tokenExchange": {"tokenURL": "https://auth.example.com/token",
//	                "clientID": "mcp-gateway", "clientSecret": "${GATEWAY_CLIENT_SECRET}",
//	                "audience": "https://github-mcp.example.com/mcp"}},
//	    "legacy":  {"mode": "passthrough", "forwardHeaders": ["X-Legacy-Key"], "rateLimit": {"rate": 1, "burst": 5}}
//	  }
//	}
//
// Its keys:
//
//   - maxInFlight: calls in flight across the gateway (default 256);
//   - maxIsolatedSessions: upstream sessions held by downstream sessions of
//     isolated servers (default twice maxInFlight);
//   - queueWait, callTimeout: Go durations; how long a call may wait for a
//     slot at maxInFlight (default 10s), and bound one call (default 5m);
//   - redis: a redis:// URL of the catalog store shared by gateway
//     replicas (the command's --redis and $MCPOOL_REDIS_URL come first);
//   - stateless: true serves every request on its own, with no
//     Mcp-Session-Id (--stateless overrides it);
//   - advertiseURL: this replica's MCP endpoint as the other replicas
//     reach it (http://10.0.0.5:7300/mcp), where they forward the requests
//     of sessions whose isolated stdio servers run here (--advertise-url
//     comes first; needs a session key);
//   - unprefixed: true serves the one server's tools and prompts under
//     their own names; the file must then have exactly one enabled server;
//   - auth: makes the gateway an OAuth 2.1 resource server (the command's
//     --auth-issuer and --auth-audience come first): issuer (required; the
//     authorization server, whose RFC 8414 or OpenID metadata gives its
//     keys), audience (the gateway's public /mcp URL, which tokens must be
//     issued for; default the listen address's /mcp URL, on loopback
//     only), jwksURL (default discovered), introspectionURL (to accept
//     opaque tokens, RFC 7662), clientID and clientSecret (required with
//     introspectionURL: the gateway's credentials there, the secret best
//     given as ${VAR}), scopes (every token must carry them); issuer,
//     jwksURL, introspectionURL and servers.NAME.tokenExchange.tokenURL
//     must be https URLs, plain http only on a loopback host (see
//     [oauth.CheckEndpoint]);
//   - rateLimit.perIdentity: {"rate": calls per second, "burst": N}, a
//     token bucket per identity (the token's subject) and server;
//   - servers.NAME.mode: "shared" (one pool for every client), "isolated"
//     (upstream sessions per client session; the default) or "passthrough"
//     (each client's own upstream credentials);
//   - servers.NAME.forwardHeaders: the client headers a passthrough server
//     receives; never Authorization, which carries the client's token for
//     the gateway (passing it on is forbidden by the MCP specification's
//     "Token Passthrough");
//   - servers.NAME.tokenExchange: {"tokenURL", "clientID", "clientSecret",
//     "audience", "scopes"}: a passthrough server gets, per caller, a token
//     issued for audience in exchange for the caller's (RFC 8693); needs
//     auth;
//   - servers.NAME.tools: {"allow": [glob], "deny": [glob]}: path.Match
//     globs of the server's own tool names; deny wins, a non-empty allow
//     serves only what it matches; a filtered tool is not listed and a
//     call to it is refused as unknown;
//   - servers.NAME.access: {"scopes": [..], "subjects": [glob]}: a caller
//     whose token lacks a scope or whose subject matches no glob sees none
//     of the server's tools, prompts or resources; needs auth;
//   - servers.NAME.rateLimit: {"rate", "burst"}, overriding
//     rateLimit.perIdentity for the server;
//   - servers.NAME.spares: pre-warmed upstream sessions an isolated server
//     keeps ready (default 2; negative for none);
//   - servers.NAME.maxQueued: callers queued for the server when the
//     gateway is at maxInFlight (default 64; negative for none).
//
// Numbers must not be negative but where said.
//
// # Rules between sections
//
// A file is refused, whatever command reads it, when:
//
//   - mcpool.servers or gateway.servers names a server that is not in
//     "mcpServers" or "servers";
//   - gateway.unprefixed is set and there is not exactly one enabled
//     server;
//   - a passthrough server has mcpool.servers.NAME.auth (it uses each
//     client's credentials, not the gateway's), is a stdio server (it
//     forwards HTTP headers), or has neither forwardHeaders nor
//     tokenExchange; forwardHeaders names Authorization; tokenExchange is
//     set on a server not in passthrough mode;
//   - mcpool.defaults holds "replicas" or "auth" (they belong to one
//     server);
//   - the servers break a rule of [mcpool.GroupConfig.Validate]: the
//     separator, a server whose name holds it, two names that become the
//     same in tool names, a pool setting out of range (minSessions above
//     maxSessions), a URL that is not http:// or https://.
//
// Inside "mcpool" and "gateway" every key must be known: a misspelt one is
// an error, with the nearest known key, and a key of ours in the wrong
// section names the section it belongs in:
//
//	mcp.json: server "a": gateway.servers.a.maxSessions: belongs in mcpool.servers.a, not in gateway.servers.a
//
// gateway.servers.NAME.forwardHeaders on a server that is not in
// passthrough mode, and spares on one that is not isolated, are warnings:
// they are ignored.
//
// # Errors
//
// Every error of Load and Parse is a [*FileError], which matches
// [mcpool.ErrInvalidConfig]: one line naming the file, the server and the
// field, and what to do. It never holds a header value, an environment
// value or a URL's query.
package config
