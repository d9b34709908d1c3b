package mcpool_test

import (
	"errors"
	"testing"

	"github.com/mcpool/mcpool"
)

// Validate applies NewGroup's rules without making a pool, and names the
// server and field of the first problem.
func TestGroupConfigValidate(t *testing.T) {
	const u = "http://127.0.0.1:1/mcp"
	ok := mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{URL: u}}, {Name: "b", Replicas: []mcpool.Config{{URL: u}, {URL: u}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		cfg   mcpool.GroupConfig
		field string
	}{
		{mcpool.GroupConfig{}, "Servers"},
		{mcpool.GroupConfig{Separator: "/", Servers: ok.Servers}, "Separator"},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Config: mcpool.Config{URL: u}}}}, "Servers"},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a__b", Config: mcpool.Config{URL: u}}}}, `Servers["a__b"].Name`},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{URL: u}}, {Name: "a", Config: mcpool.Config{URL: u}}}}, `Servers["a"].Name`},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a b", Config: mcpool.Config{URL: u}}, {Name: "a_b", Config: mcpool.Config{URL: u}}}}, `Servers["a_b"].Name`},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Balance: 7, Config: mcpool.Config{URL: u}}}}, `Servers["a"].Balance`},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Config: mcpool.Config{URL: u, MaxSessions: -1}}}}, `Servers["a"].MaxSessions`},
		{mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Replicas: []mcpool.Config{{URL: u}, {URL: "ftp://h/mcp"}}}}}, `Servers["a"].Replicas[1].URL`},
	} {
		err := tc.cfg.Validate()
		var ce *mcpool.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, mcpool.ErrInvalidConfig) || ce.Field != tc.field {
			t.Errorf("Validate: %v, want a ConfigError on %s", err, tc.field)
		}
		if _, nerr := mcpool.NewGroup(tc.cfg); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("NewGroup: %v, want Validate's error %v", nerr, err)
		}
	}
}
