package oauth_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/mcpool/mcpool/oauth"
)

// An MCP server at https://mcp.example.com/mcp, protected by an
// authorization server: Protected Resource Metadata for clients to find it,
// tokens validated on every request, per-identity limits and an audit line
// per call.
func ExampleResourceServer_Middleware() {
	rs, err := oauth.New(context.Background(), oauth.Config{
		Issuer:   "https://auth.example.com",
		Audience: "https://mcp.example.com/mcp",
		Scopes:   []string{"mcp:tools"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()
	limits := oauth.NewLimiter(oauth.LimiterConfig{Rate: 10, Burst: 20})
	audit := oauth.NewAuditor(os.Stderr)

	var mcpHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := oauth.IdentityFrom(r.Context())
		if ok, _ := limits.Allow(id.Subject); !ok {
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
		done := audit.Start(id, "demo", oauth.KindTool, "echo")
		// ... serve the MCP request ...
		done(r.Context(), oauth.OutcomeOK, 0)
	})
	mux := http.NewServeMux()
	for _, p := range rs.MetadataPaths() {
		mux.Handle(p, rs.MetadataHandler())
	}
	mux.Handle("/mcp", rs.Middleware(mcpHandler))
	_ = http.ListenAndServe
}

// Calls to an upstream MCP server carry a token issued for it, exchanged
// from the caller's, never the caller's own token.
func ExampleExchanger_Transport() {
	x := &oauth.Exchanger{
		TokenURL:     "https://auth.example.com/token",
		ClientID:     "mcp-gateway",
		ClientSecret: os.Getenv("GATEWAY_CLIENT_SECRET"),
		Audience:     "https://github-mcp.example.com/mcp",
	}
	client := &http.Client{Transport: x.Transport(nil)}
	// Requests made with a context from oauth.WithIdentity (the middleware's
	// request context) carry Authorization: Bearer <exchanged token>.
	_ = client
}
