package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// FileSettings is the "gateway" object of a config file, which other MCP
// clients ignore:
//
//	"gateway": {
//	  "maxInFlight": 256,
//	  "redis": "redis://127.0.0.1:6379/0",
//	  "servers": {
//	    "search":  {"mode": "shared", "maxQueued": 64},
//	    "browser": {"mode": "isolated", "spares": 2},
//	    "github":  {"mode": "passthrough", "forwardHeaders": ["X-GitHub-Token"]}
//	  }
//	}
//
// A server not named there is served in ModeIsolated with the defaults.
type FileSettings struct {
	MaxInFlight int `json:"maxInFlight"`
	// MaxIsolatedSessions caps the upstream sessions held by downstream
	// sessions of isolated servers (Options.MaxIsolatedSessions; zero means
	// twice maxInFlight).
	MaxIsolatedSessions int `json:"maxIsolatedSessions"`
	// Redis is a redis:// URL for the catalog store shared by gateway
	// replicas (the command's --redis overrides it).
	Redis string `json:"redis"`
	// Stateless serves every request on its own (Options.Stateless).
	Stateless bool `json:"stateless"`
	// Unprefixed serves a one-server config's names as the server's own
	// (Options.Unprefixed).
	Unprefixed  bool                      `json:"unprefixed"`
	QueueWait   string                    `json:"queueWait"`   // a Go duration, e.g. "10s"
	CallTimeout string                    `json:"callTimeout"` // a Go duration, e.g. "5m"
	Servers     map[string]ServerSettings `json:"servers"`
}

// LoadSettings reads the "gateway" object of the config file at path; a
// file without one yields zero settings. Every error names the file and
// the field. Unknown keys are errors, to catch typos.
func LoadSettings(path string) (*FileSettings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var top struct {
		Gateway json.RawMessage `json:"gateway"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	fs := &FileSettings{}
	if top.Gateway == nil {
		return fs, nil
	}
	dec := json.NewDecoder(bytes.NewReader(top.Gateway))
	dec.DisallowUnknownFields()
	if err := dec.Decode(fs); err != nil {
		return nil, fmt.Errorf("%s: gateway: %v", path, err)
	}
	for name, s := range fs.Servers {
		switch s.Mode {
		case "", ModeShared, ModeIsolated, ModePassthrough:
		default:
			return nil, fmt.Errorf("%s: server %q: field gateway.servers.%s.mode: %q is not a mode (shared, passthrough or isolated)", path, name, name, s.Mode)
		}
	}
	if fs.MaxIsolatedSessions < 0 {
		return nil, fmt.Errorf("%s: field gateway.maxIsolatedSessions: is negative", path)
	}
	for field, v := range map[string]string{"queueWait": fs.QueueWait, "callTimeout": fs.CallTimeout} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d < 0 {
			return nil, fmt.Errorf("%s: field gateway.%s: %q is not a duration (write \"10s\", \"5m\")", path, field, v)
		}
	}
	return fs, nil
}

// Durations returns QueueWait and CallTimeout, zero when unset.
func (fs *FileSettings) Durations() (queueWait, callTimeout time.Duration) {
	queueWait, _ = time.ParseDuration(fs.QueueWait)
	callTimeout, _ = time.ParseDuration(fs.CallTimeout)
	return queueWait, callTimeout
}
