package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpool/mcpool"
)

// A malformed --header is a credential all the same: the error says what
// is wrong without quoting any of it.
func TestHeaderErrorHidesValue(t *testing.T) {
	for _, bad := range []string{
		"Authorization Bearer s3cr3t-abc",
		"s3cr3t-abc",
		`s3cr3t-abc"quoted\`,
		"X Api Key: s3cr3t-abc",
		"Authorization\ts3cr3t-abc",
	} {
		r := runCLI(t, "tools", "--header", bad)
		wantOneLineError(t, r, exitUsage, "'Name: value'")
		if strings.Contains(r.stderr, "s3cr3t") || strings.Contains(r.stderr, "Bearer") {
			t.Errorf("--header %q: the error %q quotes the value", bad, r.stderr)
		}
	}
	// Other flags still say what they were given.
	wantOneLineError(t, runCLI(t, "tools", "--connect-timeout", "soon"), exitUsage, `"soon"`)
}

// A --stdio command line may carry a key; a quoting mistake in it is
// reported without it.
func TestStdioErrorHidesCommand(t *testing.T) {
	for _, bad := range []string{"server --api-key 's3cr3t-abc", `server --api-key s3cr3t-abc\`} {
		r := runCLI(t, "tools", "--stdio", bad)
		wantOneLineError(t, r, exitUsage, "--stdio")
		if strings.Contains(r.stderr, "s3cr3t") {
			t.Errorf("--stdio %q: the error %q quotes the command", bad, r.stderr)
		}
	}
}

// Errors from the transport quote the request's URL (net/http hides only
// its password), and may quote whatever else a server or the SDK chose:
// the one line the command prints shows none of the credentials it was
// given.
func TestErrorsHideCredentials(t *testing.T) {
	const url = "http://user:pa55w0rd-x@127.0.0.1:1/mcp?api_key=k3y-s3cr3t"
	// The timeout ends the connect attempts; the error then carries the
	// last one's, which quotes the URL.
	r := runCLI(t, "tools", "--timeout", "3s", "--url", url, "--header", "X-Api-Key: hdr-s3cr3t")
	if r.code == 0 || !strings.Contains(r.stderr, "127.0.0.1:1/mcp?api_key=") {
		t.Fatalf("status %d, stderr %q; want a connect failure quoting the URL", r.code, r.stderr)
	}
	for _, s := range []string{"pa55w0rd", "k3y-s3cr3t", "hdr-s3cr3t"} {
		if strings.Contains(r.stderr, s) {
			t.Errorf("the error %q shows %s", r.stderr, s)
		}
	}
}

// Credentials from flags and config files are hidden wherever they show,
// however a URL escapes them; short values are left alone.
func TestHideSecrets(t *testing.T) {
	addSecret("Bearer abcdef-123456")
	addURLSecrets("http://u:p%40ss-word@h/x?k=v4lue-s3cret&short=ab")
	addConfigSecrets(&mcpool.Config{URL: "http://h/x?key=cfg-k3y-s3cr3t", BearerToken: "cfg-b3arer",
		Headers: http.Header{"X-Api-Key": {"cfg-h3ader"}}})
	got := hideSecrets(`Post "http://u:p%40ss-word@h/x?k=v4lue-s3cret&short=ab": auth Bearer abcdef-123456 or abcdef-123456; ` +
		`Post "http://h/x?key=cfg-k3y-s3cr3t": cfg-b3arer cfg-h3ader`)
	if want := `Post "http://u:***@h/x?k=***&short=ab": auth *** or ***; Post "http://h/x?key=***": *** ***`; got != want {
		t.Errorf("hideSecrets: %q, want %q", got, want)
	}
}
