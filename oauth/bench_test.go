package oauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpool/mcpool/oauth"
)

// BenchmarkValidate measures the cost of validating one JWT access token
// with a cached key: parse, signature, claims, scopes.
func BenchmarkValidate(b *testing.B) {
	for _, c := range []struct {
		name string
		key  signingKey
		ttl  time.Duration
	}{
		{"ES256", newECKey(b, "ec"), 0},
		{"RS256", newRSAKey(b, "rsa"), 0},
		{"RS256/cached", newRSAKey(b, "rsa"), time.Minute},
	} {
		key := c.key
		b.Run(c.name, func(b *testing.B) {
			as := newAuthServer(b, key)
			rs, _ := newRS(b, as, func(cfg *oauth.Config) { cfg.ValidationCacheTTL = c.ttl })
			tok := key.sign(b, as.claims())
			ctx := context.Background()
			if _, err := rs.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := rs.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
