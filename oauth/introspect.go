package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// introspectionResponse is an RFC 7662 section 2.2 answer.
type introspectionResponse struct {
	Active    bool      `json:"active"`
	Scope     string    `json:"scope"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub"`
	Issuer    string    `json:"iss"`
	Audience  stringSet `json:"aud"`
	ExpiresAt int64     `json:"exp"`
	NotBefore int64     `json:"nbf"`
}

// tokenCache keeps validation results (introspection answers, verified
// JWTs) by the token's SHA-256 (never the token) for a short time, bounded
// in size.
type tokenCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[[32]byte]introspected
}

type introspected struct {
	id    Identity // without Token
	err   error    // a refusal (inactive, wrong audience...), cached like an answer
	until time.Time
}

// maxCachedTokens bounds the cache: past it, expired entries are dropped,
// and if none are, all of them.
const maxCachedTokens = 10000

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, entries: make(map[[32]byte]introspected)}
}

func (c *tokenCache) get(key [32]byte, now time.Time) (introspected, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.After(e.until) {
		return introspected{}, false
	}
	return e, true
}

func (c *tokenCache) put(key [32]byte, e introspected, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		for k, v := range c.entries {
			if now.After(v.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedTokens {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}

// introspectToken validates an opaque token with the introspection
// endpoint, reusing an answer for up to IntrospectionCacheTTL.
func (rs *ResourceServer) introspectToken(ctx context.Context, token string) (Identity, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	if e, ok := rs.introspect.get(key, now); ok {
		if e.err != nil {
			return Identity{}, e.err
		}
		id := e.id
		id.Token = token
		return id, nil
	}
	ir, err := rs.postIntrospection(ctx, token)
	if err != nil {
		return Identity{}, err // endpoint failures are not cached
	}
	id, verr := rs.checkIntrospection(ir, now)
	until := now.Add(rs.cfg.IntrospectionCacheTTL)
	if !id.Expiry.IsZero() && id.Expiry.Before(until) {
		until = id.Expiry
	}
	rs.introspect.put(key, introspected{id: id, err: verr, until: until}, now)
	if verr != nil {
		return Identity{}, verr
	}
	id.Token = token
	return id, nil
}

func (rs *ResourceServer) checkIntrospection(ir introspectionResponse, now time.Time) (Identity, error) {
	if !ir.Active {
		return Identity{}, fmt.Errorf("%w: the introspection endpoint reports it inactive", ErrTokenInactive)
	}
	leeway := rs.cfg.Leeway
	if ir.ExpiresAt != 0 && now.After(time.Unix(ir.ExpiresAt, 0).Add(leeway)) {
		return Identity{}, fmt.Errorf("%w: exp is past", ErrTokenExpired)
	}
	if ir.NotBefore != 0 && now.Add(leeway).Before(time.Unix(ir.NotBefore, 0)) {
		return Identity{}, fmt.Errorf("%w: nbf is in the future", ErrTokenNotYetValid)
	}
	if ir.Issuer != "" && ir.Issuer != rs.cfg.Issuer {
		return Identity{}, fmt.Errorf("%w: iss is %q, expected %q", ErrWrongIssuer, ir.Issuer, rs.cfg.Issuer)
	}
	// The audience must be stated: a token whose audience is unknown may
	// have been issued for another resource.
	if !containsString(ir.Audience, rs.cfg.Audience) {
		return Identity{}, fmt.Errorf("%w: aud does not contain %q", ErrWrongAudience, rs.cfg.Audience)
	}
	if ir.Subject == "" {
		return Identity{}, fmt.Errorf("%w: the introspection answer has no sub", ErrMalformedToken)
	}
	id := Identity{Subject: ir.Subject, ClientID: ir.ClientID, Issuer: ir.Issuer, Scopes: strings.Fields(ir.Scope)}
	if ir.ExpiresAt != 0 {
		id.Expiry = time.Unix(ir.ExpiresAt, 0)
	}
	return id, nil
}

func (rs *ResourceServer) postIntrospection(ctx context.Context, token string) (introspectionResponse, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rs.cfg.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return introspectionResponse{}, fmt.Errorf("%w: %v", ErrIntrospection, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if rs.cfg.ClientID != "" {
		req.SetBasicAuth(url.QueryEscape(rs.cfg.ClientID), url.QueryEscape(rs.cfg.ClientSecret))
	}
	resp, err := rs.client.Do(req)
	if err != nil {
		rs.log.Error("oauth: introspection endpoint unreachable; opaque tokens are refused", "url", rs.cfg.IntrospectionURL, "error", err)
		return introspectionResponse{}, fmt.Errorf("%w: endpoint unreachable", ErrIntrospection)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		rs.log.Error("oauth: introspection endpoint refused the request; opaque tokens are refused", "url", rs.cfg.IntrospectionURL, "status", resp.StatusCode)
		return introspectionResponse{}, fmt.Errorf("%w: HTTP %d", ErrIntrospection, resp.StatusCode)
	}
	var ir introspectionResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ir); err != nil {
		return introspectionResponse{}, fmt.Errorf("%w: undecodable answer", ErrIntrospection)
	}
	return ir, nil
}
