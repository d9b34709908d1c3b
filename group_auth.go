package mcpool

// ServerAuth is one server's credentials in a config file, the object at
// mcpool.servers.NAME.auth, as package [github.com/mcpool/mcpool/config]
// reads it. Every field is expanded like the standard entries (${VAR},
// ${VAR:-default}, ${env:VAR}), so that a secret stays in the environment
// and out of the file:
//
//	"auth": {"token": "${GITHUB_TOKEN}"}                                  // a static bearer token
//	"auth": {"oauth": true}                                               // sign in through a browser
//	"auth": {"oauth": true, "clientId": "mcpool-cli"}                     // ... as a pre-registered client
//	"auth": {"clientId": "ci-bot", "clientSecret": "${CI_BOT_SECRET}"}    // client credentials, no person
//
// They mean what the mcpool command's flags of the same names mean. The
// library applies Token itself (Config.BearerToken); the OAuth fields need
// a handler (Config.OAuthHandler) that the caller builds, as the mcpool
// command does, because signing in involves a person and a browser. Only
// HTTP servers take them: a stdio server's credentials go in its "env".
// Errors name the field, never the value.
type ServerAuth struct {
	// Token is a bearer token sent on every HTTP request.
	Token string `json:"token"`
	// OAuth asks for the OAuth 2.1 authorization-code flow with PKCE: a
	// person signs in through a browser.
	OAuth bool `json:"oauth"`
	// ClientID and ClientSecret name a pre-registered OAuth client. With
	// OAuth they are used for the authorization-code flow; without it, for
	// the client-credentials grant (RFC 6749 §4.4), which needs both.
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	// ClientMetadataURL is an HTTPS URL of the client's metadata document,
	// used as its client ID where the authorization server supports it
	// (OAuth only).
	ClientMetadataURL string `json:"clientMetadataUrl"`
}
