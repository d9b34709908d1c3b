package oauth_test

import (
	"context"
	"testing"
)

// BenchmarkValidate measures the cost of validating one JWT access token
// with a cached key: parse, signature, claims, scopes.
func BenchmarkValidate(b *testing.B) {
	for _, key := range []signingKey{newECKey(b, "ec"), newRSAKey(b, "rsa")} {
		b.Run(key.method.Alg(), func(b *testing.B) {
			as := newAuthServer(b, key)
			rs, _ := newRS(b, as, nil)
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
