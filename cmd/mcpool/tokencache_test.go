package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestTokenCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	cfg := &oauth2.Config{ClientID: "cid", Endpoint: oauth2.Endpoint{TokenURL: "http://127.0.0.1:1/token"}}
	tok := &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Now().Add(time.Hour)}

	a := &tokenCache{path: path, key: "http://a/mcp"}
	if ts, err := a.load(); ts != nil || err != nil {
		t.Fatalf("load from a missing file: %v, %v; want nothing", ts, err)
	}
	if _, err := a.newTokenSource(context.Background(), cfg, tok); err != nil {
		t.Fatal(err)
	}
	b := &tokenCache{path: path, key: "http://b/mcp"}
	if _, err := b.newTokenSource(context.Background(), cfg, &oauth2.Token{AccessToken: "at-b", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	// A later run finds each server's token.
	for key, want := range map[string]string{"http://a/mcp": "at-1", "http://b/mcp": "at-b"} {
		ts, err := (&tokenCache{path: path, key: key}).load()
		if err != nil || ts == nil {
			t.Fatalf("load %s: %v, %v", key, ts, err)
		}
		got, err := ts.Token()
		if err != nil || got.AccessToken != want {
			t.Errorf("token for %s: %v, %v; want %s", key, got, err, want)
		}
	}
	// Expired with no refresh token: nothing to use.
	c := &tokenCache{path: path, key: "http://c/mcp"}
	if _, err := c.newTokenSource(context.Background(), cfg, &oauth2.Token{AccessToken: "old", Expiry: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ts, err := c.load(); ts != nil || err != nil {
		t.Errorf("expired token without refresh: %v, %v; want nothing", ts, err)
	}
	// A file others can read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.load(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("load from a 0644 file: %v; want a refusal", err)
	}
}
