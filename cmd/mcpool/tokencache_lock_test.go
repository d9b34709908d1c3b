package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// tokenCacheWriterEnv makes the test binary a second process writing to a
// shared token cache (see TestMain and TestTokenCacheSharedAcrossProcesses).
const tokenCacheWriterEnv = "MCPOOL_CLI_TEST_TOKENCACHE_WRITER"

// crossProcessSaves is how many entries each writer process saves.
const crossProcessSaves = 60

// saveTokens saves n entries for each of the keys (key#0 to key#n-1), one
// goroutine per key, each entry through its own tokenCache as servers of
// one command do. The file only grows, so an update lost at any moment
// stays lost: checkTokens sees it.
func saveTokens(path string, keys []string, n int) error {
	cfg := &oauth2.Config{ClientID: "cid", Endpoint: oauth2.Endpoint{TokenURL: "http://127.0.0.1:1/token"}}
	errs := make(chan error, len(keys))
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Go(func() {
			for i := range n {
				c := &tokenCache{path: path, key: key + "#" + strconv.Itoa(i)}
				tok := &oauth2.Token{AccessToken: "token of " + c.key, Expiry: time.Now().Add(time.Hour)}
				if _, err := c.newTokenSource(context.Background(), cfg, tok); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// checkTokens fails unless the cache holds every entry saveTokens saved.
func checkTokens(t *testing.T, path string, keys []string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]cachedToken{}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	var lost []string
	for _, key := range keys {
		for i := range n {
			k := key + "#" + strconv.Itoa(i)
			if e, ok := all[k]; !ok || e.Token == nil || e.Token.AccessToken != "token of "+k {
				lost = append(lost, k)
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("the cache lost %d of %d entries, among them %s", len(lost), len(keys)*n, lost[0])
	}
}

// Servers sharing one --token-cache file save at once; each keeps its
// entry, since every read-modify-write of the file holds its lock.
func TestTokenCacheConcurrentSavesKeepEveryEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	keys := []string{"http://a/mcp", "http://b/mcp", "http://c/mcp", "http://d/mcp"}
	const n = 50
	if err := saveTokens(path, keys, n); err != nil {
		t.Fatal(err)
	}
	checkTokens(t, path, keys, n)
}

// tokenCacheWriter is the second process's part: it waits for a line on
// stdin (so that both processes write at the same time), then saves.
func tokenCacheWriter(spec string) {
	var path, key string
	if _, err := fmt.Sscanf(spec, "%s %s", &path, &key); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := saveTokens(path, []string{key}, crossProcessSaves); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Two mcpool processes sharing one --token-cache file save at once; each
// keeps its entry (flock on the lock file beside the cache).
func TestTokenCacheSharedAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	keys := []string{"http://a/mcp", "http://b/mcp"}
	var starts []io.WriteCloser
	var cmds []*exec.Cmd
	for _, key := range keys {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), tokenCacheWriterEnv+"="+path+" "+key)
		cmd.Stdout, cmd.Stderr = io.Discard, new(lockedBuffer)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		starts, cmds = append(starts, in), append(cmds, cmd)
	}
	for _, in := range starts {
		_, _ = io.WriteString(in, "go\n")
		in.Close()
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %s: %v: %s", keys[i], err, cmd.Stderr)
		}
	}
	checkTokens(t, path, keys, crossProcessSaves)
}
