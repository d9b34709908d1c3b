package mcpool_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestInvalidConfigs(t *testing.T) {
	nt := func(context.Context) (mcp.Transport, error) { return nil, nil }
	for _, tc := range []struct {
		name  string
		cfg   mcpool.Config
		field string
	}{
		{"no server", mcpool.Config{}, "URL"},
		{"two servers", mcpool.Config{URL: "http://127.0.0.1/mcp", NewTransport: nt}, "URL"},
		{"bad scheme", mcpool.Config{URL: "ftp://127.0.0.1/mcp"}, "URL"},
		{"no host", mcpool.Config{URL: "http:///mcp"}, "URL"},
		{"bad sse", mcpool.Config{SSEURL: "127.0.0.1:80"}, "SSEURL"},
		{"empty command", mcpool.Config{Command: &mcpool.Command{}}, "Command.Path"},
		{"negative terminate", mcpool.Config{Command: &mcpool.Command{Path: "x", TerminateTimeout: -1}}, "Command.TerminateTimeout"},
		{"negative min", mcpool.Config{NewTransport: nt, MinSessions: -1}, "MinSessions"},
		{"negative max", mcpool.Config{NewTransport: nt, MaxSessions: -1}, "MaxSessions"},
		{"min over max", mcpool.Config{NewTransport: nt, MinSessions: 5, MaxSessions: 2}, "MinSessions"},
		{"negative calls", mcpool.Config{NewTransport: nt, MaxCallsPerSession: -2}, "MaxCallsPerSession"},
		{"negative connect", mcpool.Config{NewTransport: nt, ConnectTimeout: -1}, "ConnectTimeout"},
		{"negative drain", mcpool.Config{NewTransport: nt, DrainTimeout: -1}, "DrainTimeout"},
		{"header value with a line break", mcpool.Config{URL: "http://127.0.0.1/mcp", Headers: http.Header{"X-Key": {"s3cret\n"}}}, "Headers"},
		{"header name with a space", mcpool.Config{URL: "http://127.0.0.1/mcp", Headers: http.Header{"X Key": {"v"}}}, "Headers"},
		{"a whole header as its name", mcpool.Config{URL: "http://127.0.0.1/mcp", Headers: http.Header{"Authorization: Bearer s3cret": {""}}}, "Headers"},
		{"token with a line break", mcpool.Config{URL: "http://127.0.0.1/mcp", BearerToken: "s3cret\r\n"}, "BearerToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := mcpool.New(tc.cfg)
			if p != nil || !errors.Is(err, mcpool.ErrInvalidConfig) {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig", p, err)
			}
			var ce *mcpool.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v names %q, want %q", err, ce.Field, tc.field)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// Zero values mean the documented defaults; MaxSessions grows to MinSessions.
func TestConfigDefaults(t *testing.T) {
	nt := func(context.Context) (mcp.Transport, error) { return nil, nil }
	p, err := mcpool.New(mcpool.Config{NewTransport: nt})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.MaxSessions != mcpool.DefaultMaxSessions {
		t.Fatalf("MaxSessions %d", st.MaxSessions)
	}
	p.Close(context.Background())
	p, err = mcpool.New(mcpool.Config{NewTransport: nt, MinSessions: 9})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.MaxSessions != 9 {
		t.Fatalf("MaxSessions %d, want MinSessions 9", st.MaxSessions)
	}
	p.Close(context.Background())
}

// TestIdleConns: one idle connection for every call that can be in flight,
// with the zero values' defaults.
func TestIdleConns(t *testing.T) {
	for _, c := range []struct {
		cfg  mcpool.Config
		want int
	}{
		{mcpool.Config{URL: "http://127.0.0.1:1/mcp"}, mcpool.DefaultMaxSessions * (mcpool.DefaultMaxCallsPerSession + 1)},
		{mcpool.Config{URL: "http://127.0.0.1:1/mcp", MaxSessions: 8, MaxCallsPerSession: 1}, 16},
		{mcpool.Config{URL: "http://127.0.0.1:1/mcp", MinSessions: 6}, 6 * (mcpool.DefaultMaxCallsPerSession + 1)},
		{mcpool.Config{}, mcpool.DefaultMaxSessions * (mcpool.DefaultMaxCallsPerSession + 1)}, // invalid: no transport
	} {
		if got := c.cfg.IdleConns(); got != c.want {
			t.Errorf("%+v: IdleConns %d, want %d", c.cfg, got, c.want)
		}
	}
}
