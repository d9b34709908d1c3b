package main

import (
	"fmt"
	"path/filepath"
	"sync"
)

// Every save of the token cache reads the whole file, changes one
// server's entry and renames a new file over it. Two writers that
// interleave (two OAuth servers of one command sharing --token-cache, or
// two mcpool processes) would lose one another's tokens, so each
// read-modify-write holds both locks below.
var (
	cacheFileMusMu sync.Mutex
	cacheFileMus   = map[string]*sync.Mutex{} // by absolute path; never shrinks
)

// lockCacheFile serializes read-modify-write of the cache file at path:
// within the process through a mutex per path (tokenCache values for
// different servers share it), and across processes through an exclusive
// advisory lock on path+".lock" where the system has one (flock on
// Unix; elsewhere only the in-process lock applies). unlock releases both.
func lockCacheFile(path string) (unlock func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--token-cache: %w", err)
	}
	cacheFileMusMu.Lock()
	mu := cacheFileMus[abs]
	if mu == nil {
		mu = new(sync.Mutex)
		cacheFileMus[abs] = mu
	}
	cacheFileMusMu.Unlock()
	mu.Lock()
	release, err := lockFile(abs + ".lock")
	if err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("--token-cache: %w", err)
	}
	return func() { release(); mu.Unlock() }, nil
}
