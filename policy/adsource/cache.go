package adsource

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// cacheVersion is the cache file's format.
const cacheVersion = 1

type cacheFile struct {
	Version  int       `json:"version"`
	Snapshot *Snapshot `json:"snapshot"`
}

// SaveCache writes the snapshot to path atomically, readable by its owner
// only: the objects may hold pre-shared keys.
func SaveCache(path string, s *Snapshot) error {
	b, err := json.Marshal(cacheFile{Version: cacheVersion, Snapshot: s})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".policy-cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// LoadCache reads a snapshot SaveCache wrote.
func LoadCache(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the configured policy cache, written by iked itself
	if err != nil {
		return nil, err
	}
	var c cacheFile
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("policy cache %s: %w", path, err)
	}
	if c.Version != cacheVersion || c.Snapshot == nil {
		return nil, fmt.Errorf("policy cache %s: unknown format version %d", path, c.Version)
	}
	return c.Snapshot, nil
}
