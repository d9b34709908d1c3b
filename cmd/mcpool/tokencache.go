package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/oauth2"
)

// load returns a token source seeded from the cache, or nil when the file
// or its entry for this server does not exist or can no longer give a
// token (expired, with no refresh token). A file that others can read is
// refused: it holds credentials.
func (c *tokenCache) load() (oauth2.TokenSource, error) {
	entry, err := c.read()
	if errors.Is(err, errNoCacheEntry) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !entry.Token.Valid() && entry.Token.RefreshToken == "" {
		return nil, nil
	}
	cfg := &oauth2.Config{
		ClientID: entry.ClientID, ClientSecret: entry.ClientSecret, Scopes: entry.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: entry.TokenURL, AuthStyle: entry.AuthStyle},
	}
	return c.newTokenSource(context.Background(), cfg, entry.Token)
}

// newTokenSource is the handler's NewTokenSource: the usual refreshing
// source, which writes every new token to the cache.
func (c *tokenCache) newTokenSource(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
	entry := cachedToken{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.Endpoint.TokenURL,
		AuthStyle: cfg.Endpoint.AuthStyle, Scopes: cfg.Scopes,
	}
	s := &cachingSource{src: cfg.TokenSource(ctx, tok), cache: c, entry: entry}
	if err := s.save(tok); err != nil {
		return nil, err
	}
	return s, nil
}

// cachingSource saves each token its source returns that differs from the
// last one saved.
type cachingSource struct {
	src   oauth2.TokenSource
	cache *tokenCache
	entry cachedToken
	last  string // access token last saved; guarded by cache.mu
}

// Token returns the current token, saving a refreshed one to the cache file.
func (s *cachingSource) Token() (*oauth2.Token, error) {
	tok, err := s.src.Token()
	if err != nil {
		return nil, err
	}
	return tok, s.save(tok)
}

func (s *cachingSource) save(tok *oauth2.Token) error {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if tok.AccessToken == s.last {
		return nil
	}
	e := s.entry
	e.Token = tok
	if err := s.cache.write(e); err != nil {
		return err
	}
	s.last = tok.AccessToken
	return nil
}

func (c *tokenCache) read() (cachedToken, error) {
	all, err := c.readAll()
	if err != nil {
		return cachedToken{}, err
	}
	e, ok := all[c.key]
	if !ok || e.Token == nil {
		return cachedToken{}, errNoCacheEntry
	}
	return e, nil
}

// readAll returns every server's entry; a missing file is an empty cache.
func (c *tokenCache) readAll() (map[string]cachedToken, error) {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoCacheEntry
	}
	if err != nil {
		return nil, fmt.Errorf("--token-cache: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("--token-cache: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--token-cache: %s is open to other users (mode %v); it holds credentials: chmod 600 it", c.path, fi.Mode().Perm())
	}
	all := map[string]cachedToken{}
	if err := json.NewDecoder(f).Decode(&all); err != nil {
		return nil, fmt.Errorf("--token-cache: %s is not a token cache: %w", c.path, err)
	}
	return all, nil
}

// write replaces this server's entry. The file is written whole to a
// temporary file of mode 0600 beside it, then renamed over it, so that a
// crash never leaves half a file and the credentials are never readable
// by others, even for a moment. The read, change and rename hold the
// file's locks (lockCacheFile), so concurrent writers of other servers'
// entries, in this process or another, keep theirs.
func (c *tokenCache) write(e cachedToken) error {
	unlock, err := lockCacheFile(c.path)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := c.readAll()
	if errors.Is(err, errNoCacheEntry) {
		all, err = map[string]cachedToken{}, nil
	}
	if err != nil {
		return err
	}
	all[c.key] = e
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), "."+filepath.Base(c.path)+".*")
	if err != nil {
		return fmt.Errorf("--token-cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(append(b, '\n'))
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		return fmt.Errorf("--token-cache: %w", err)
	}
	return nil
}
