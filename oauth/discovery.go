package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// asMetadata is the part of an authorization server's metadata (RFC 8414
// section 2, OpenID Connect Discovery section 3) this package reads.
type asMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// check applies [CheckEndpoint] to the endpoints the metadata names: a
// metadata document that sends this server to plain http off loopback is
// refused whole.
func (md asMetadata) check() error {
	for _, e := range []struct{ name, url string }{{"jwks_uri", md.JWKSURI},
		{"introspection_endpoint", md.IntrospectionEndpoint}, {"token_endpoint", md.TokenEndpoint}} {
		if e.url == "" {
			continue
		}
		if err := CheckEndpoint(e.url); err != nil {
			return fmt.Errorf("%s %w", e.name, err)
		}
	}
	return nil
}

// metadataURLs are the discovery URLs for issuer, in the order the MCP
// authorization specification (2025-11-25, "Authorization Server Metadata
// Discovery") lists them: RFC 8414 with the well-known path inserted, OpenID
// Connect with it inserted, OpenID Connect with it appended (the last two
// are one URL for an issuer without a path).
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	base := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.Path, "/")
	urls := []string{base + "/.well-known/oauth-authorization-server" + path}
	if path == "" {
		return append(urls, base+"/.well-known/openid-configuration"), nil
	}
	return append(urls,
		base+"/.well-known/openid-configuration"+path,
		base+path+"/.well-known/openid-configuration"), nil
}

// discover fetches the issuer's metadata from the first discovery URL that
// answers, and checks that it names the same issuer (RFC 8414 section 3.3).
func discover(ctx context.Context, client *http.Client, issuer string) (asMetadata, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return asMetadata{}, err
	}
	var errs []error
	for _, u := range urls {
		md, err := fetchMetadata(ctx, client, u)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return asMetadata{}, fmt.Errorf("metadata at %s names issuer %q, not %q (RFC 8414 section 3.3)", u, md.Issuer, issuer)
		}
		if err := md.check(); err != nil {
			return asMetadata{}, fmt.Errorf("metadata at %s: %w", u, err)
		}
		return md, nil
	}
	return asMetadata{}, fmt.Errorf("no authorization server metadata for %s: %w", issuer, errors.Join(errs...))
}

func fetchMetadata(ctx context.Context, client *http.Client, u string) (asMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return asMetadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return asMetadata{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return asMetadata{}, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	var md asMetadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return asMetadata{}, fmt.Errorf("GET %s: %w", u, err)
	}
	return md, nil
}
