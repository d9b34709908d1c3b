package mcpool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FileError reports a problem in a config file read by [LoadGroupConfig].
// It matches ErrInvalidConfig. It never holds a header value, an
// environment value or a URL's query: only where the problem is and what
// it is.
type FileError struct {
	File   string // the file's path as given
	Server string // the server's name; "" for the file as a whole
	// Field is where in the server's entry (url, headers.Authorization,
	// args[2]) or in the file (mcpool.servers.NAME.maxSessions) the
	// problem is; "" for the whole entry or file.
	Field  string
	Reason string // what is wrong and, where useful, what to do
}

// Error is one line: file, server, field, reason.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString("mcpool: ")
	b.WriteString(e.File)
	if e.Server != "" {
		fmt.Fprintf(&b, ": server %q", e.Server)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether target is ErrInvalidConfig.
func (e *FileError) Is(target error) bool { return target == ErrInvalidConfig }

// LoadGroupConfig reads the MCP server config file at path, in the format
// Claude Desktop, Cursor and Claude Code (.mcp.json) read,
// {"mcpServers": {NAME: ENTRY, …}}, or VS Code's (.vscode/mcp.json, where
// comments and trailing commas are allowed), {"servers": {NAME: ENTRY, …}},
// and returns a [GroupConfig] for [NewGroup], servers in file order.
//
// An ENTRY is a stdio server ("command", "args", "env", "cwd", VS Code's
// "envFile") or an HTTP server ("url", "headers"); "type" is "stdio",
// "http" (also "streamable-http" or "streamableHttp") or "sse" (the legacy
// HTTP+SSE transport). Without "type", an entry with "command" is stdio
// and one with "url" streamable HTTP. Entries with "disabled": true are
// skipped. Other keys (VS Code's "inputs", clients' own settings) are
// ignored.
//
// Strings in command, args, env, envFile, cwd, url, headers and replicas
// may hold ${VAR}, ${VAR:-default} (the default when VAR is unset or empty)
// or VS Code's ${env:VAR}, read from the environment. A variable that is
// not set is an error, never an empty value sent to a server. VS Code's
// ${input:ID} prompts the user in the editor and is reported as
// unsupported. A stdio server's env is added to this process's
// environment. A relative envFile is read from the config file's directory.
//
// Settings other clients do not know go in a top-level "mcpool" object,
// which they ignore:
//
//	"mcpool": {
//	  "separator": "__",
//	  "defaults": {"maxSessions": 8},
//	  "servers": {
//	    "search": {"replicas": ["http://10.0.0.1:8080/mcp", "http://10.0.0.2:8080/mcp"],
//	               "balance": "least-loaded", "minSessions": 2}
//	  }
//	}
//
// Per server, and in "defaults": minSessions, maxSessions,
// maxCallsPerSession, failureThreshold (numbers), acquireTimeout,
// connectTimeout, drainTimeout, toolCacheTTL, healthCheckInterval,
// pingTimeout, probeOnAcquire, maxSessionLifetime, maxIdleTime,
// breakerCooldown (Go durations such as "30s"), protocolVersion, and
// balance ("least-loaded", "round-robin" or "failover"). Unset settings
// keep the [Config] defaults. Per server only: replicas, a list of URLs
// for an HTTP server (they replace its url, which other clients still use:
// list it too if it is one of the replicas), or a count for a stdio server
// (that many pools running the command). Unknown keys in "mcpool" are
// errors, to catch typos.
//
// Every error is a [*FileError] (errors.Is ErrInvalidConfig) naming the
// file, the server and the field, in one line, without secrets.
func LoadGroupConfig(path string) (*GroupConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &FileError{File: path, Reason: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	return ParseGroupConfig(path, data, os.LookupEnv)
}

// ParseGroupConfig is [LoadGroupConfig] for a file already read: file
// names it in errors (and locates a relative envFile), and lookup reads
// variables; nil means os.LookupEnv.
func ParseGroupConfig(file string, data []byte, lookup func(string) (string, bool)) (*GroupConfig, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l := &loader{file: file, dir: filepath.Dir(file), lookup: lookup}
	return l.parse(data)
}

type loader struct {
	file   string
	dir    string
	lookup func(string) (string, bool)
}

func (l *loader) errf(server, field, format string, a ...any) error {
	return &FileError{File: l.file, Server: server, Field: field, Reason: fmt.Sprintf(format, a...)}
}

// fileEntry is one server in mcpServers or servers.
type fileEntry struct {
	Type     string            `json:"type"`
	Command  string            `json:"command"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	EnvFile  string            `json:"envFile"`
	Cwd      string            `json:"cwd"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Disabled bool              `json:"disabled"`
}

// fileSettings are a server's settings in the "mcpool" object.
type fileSettings struct {
	Replicas           json.RawMessage `json:"replicas"`
	Balance            string          `json:"balance"`
	MinSessions        *int            `json:"minSessions"`
	MaxSessions        *int            `json:"maxSessions"`
	MaxCallsPerSession *int            `json:"maxCallsPerSession"`
	FailureThreshold   *int            `json:"failureThreshold"`
	AcquireTimeout     *fileDuration   `json:"acquireTimeout"`
	ConnectTimeout     *fileDuration   `json:"connectTimeout"`
	DrainTimeout       *fileDuration   `json:"drainTimeout"`
	ToolCacheTTL       *fileDuration   `json:"toolCacheTTL"`
	HealthCheckInt     *fileDuration   `json:"healthCheckInterval"`
	PingTimeout        *fileDuration   `json:"pingTimeout"`
	ProbeOnAcquire     *fileDuration   `json:"probeOnAcquire"`
	MaxSessionLifetime *fileDuration   `json:"maxSessionLifetime"`
	MaxIdleTime        *fileDuration   `json:"maxIdleTime"`
	BreakerCooldown    *fileDuration   `json:"breakerCooldown"`
	ProtocolVersion    *string         `json:"protocolVersion"`
	Auth               *ServerAuth     `json:"auth"`
}

type fileDuration time.Duration

// UnmarshalJSON reads a Go duration string ("10s").
func (d *fileDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration in quotes, such as "30s" or "500ms"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`%q is not a duration (write "30s", "500ms", "2m")`, s)
	}
	*d = fileDuration(v)
	return nil
}

func (l *loader) parse(data []byte) (*GroupConfig, error) {
	var top struct {
		MCPServers json.RawMessage `json:"mcpServers"`
		Servers    json.RawMessage `json:"servers"`
		MCPool     json.RawMessage `json:"mcpool"`
	}
	data = stripJSONC(data)
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, l.errf("", "", "%s", jsonProblem(data, err))
	}
	names, entries, err := l.entries(top.MCPServers, "mcpServers")
	if err != nil {
		return nil, err
	}
	names2, entries2, err := l.entries(top.Servers, "servers")
	if err != nil {
		return nil, err
	}
	for _, n := range names2 {
		if _, dup := entries[n]; dup {
			return nil, l.errf(n, "", `is in both "mcpServers" and "servers": keep one`)
		}
		names = append(names, n)
		entries[n] = entries2[n]
	}
	if top.MCPServers == nil && top.Servers == nil {
		return nil, l.errf("", "", `has no "mcpServers" (Claude, Cursor) or "servers" (VS Code) object`)
	}

	gc := &GroupConfig{}
	settings, defaults, err := l.settings(top.MCPool, gc, entries)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var e fileEntry
		if err := strictish(entries[name], &e, false); err != nil {
			return nil, l.errf(name, jsonField(err), "%s", jsonReason(err))
		}
		if e.Disabled {
			continue
		}
		sc, err := l.server(name, &e, defaults, settings[name])
		if err != nil {
			return nil, err
		}
		gc.Servers = append(gc.Servers, sc)
	}
	if len(gc.Servers) == 0 {
		return nil, l.errf("", "", "lists no server (or every one is disabled)")
	}
	if err := l.check(gc); err != nil {
		return nil, err
	}
	return gc, nil
}

// entries decodes an object of servers, keeping the file's order.
func (l *loader) entries(raw json.RawMessage, key string) ([]string, map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if raw == nil || string(raw) == "null" {
		return nil, m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, l.errf("", key, "must be an object of servers by name")
	}
	var names []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, l.errf("", key, "%v", err)
		}
		name := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, l.errf(name, "", "%v", err)
		}
		if _, dup := m[name]; dup {
			return nil, nil, l.errf(name, "", "is listed twice in %q", key)
		}
		if name == "" {
			return nil, nil, l.errf("", key, "has a server with an empty name")
		}
		names = append(names, name)
		m[name] = v
	}
	return names, m, nil
}

// settings decodes the "mcpool" object.
func (l *loader) settings(raw json.RawMessage, gc *GroupConfig, entries map[string]json.RawMessage) (map[string]json.RawMessage, json.RawMessage, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil, nil
	}
	var sec struct {
		Separator string                     `json:"separator"`
		Defaults  json.RawMessage            `json:"defaults"`
		Servers   map[string]json.RawMessage `json:"servers"`
	}
	if err := strictish(raw, &sec, true); err != nil {
		return nil, nil, l.errf("", "mcpool"+dotted(jsonField(err)), "%s", jsonReason(err))
	}
	gc.Separator = sec.Separator
	for name := range sec.Servers {
		if _, ok := entries[name]; !ok {
			return nil, nil, l.errf(name, "mcpool.servers."+name, `has settings but is not in "mcpServers" or "servers"`)
		}
	}
	if sec.Defaults != nil {
		var s fileSettings
		if f, err := strictField(sec.Defaults, &s); err != nil {
			return nil, nil, l.errf("", "mcpool.defaults"+dotted(f), "%s", jsonReason(err))
		}
		if s.Replicas != nil {
			return nil, nil, l.errf("", "mcpool.defaults.replicas", "belongs to one server: move it to mcpool.servers.NAME")
		}
		if s.Auth != nil {
			return nil, nil, l.errf("", "mcpool.defaults.auth", "belongs to one server: move it to mcpool.servers.NAME")
		}
	}
	return sec.Servers, sec.Defaults, nil
}

// server builds one server's ServerConfig.
func (l *loader) server(name string, e *fileEntry, defaults, own json.RawMessage) (ServerConfig, error) {
	sc := ServerConfig{Name: name}
	cfg := &sc.Config
	x := func(field, s string) (string, error) {
		v, err := expand(s, l.lookup)
		if err != nil {
			return "", l.errf(name, field, "%v", err)
		}
		return v, nil
	}
	var err error
	kind := e.Type
	switch kind {
	case "":
		switch {
		case e.Command != "" && e.URL != "":
			return sc, l.errf(name, "command", `and "url" are both set: a stdio server has a command, an HTTP server a url; set "type" or remove one`)
		case e.Command != "":
			kind = "stdio"
		case e.URL != "":
			kind = "http"
		default:
			return sc, l.errf(name, "command", `is missing, and so is "url": a stdio server needs "command", an HTTP server "url"`)
		}
	case "stdio", "http", "streamable-http", "streamableHttp", "sse":
	default:
		return sc, l.errf(name, "type", "%q is not a server type (want stdio, http, streamable-http or sse)", e.Type)
	}
	if kind == "stdio" {
		if e.Command == "" {
			return sc, l.errf(name, "command", `is missing: a stdio server needs the program to start`)
		}
		if e.URL != "" || len(e.Headers) > 0 {
			return sc, l.errf(name, "url", `and "headers" do not apply to a stdio server`)
		}
		c := &Command{}
		if c.Path, err = x("command", e.Command); err != nil {
			return sc, err
		}
		for i, a := range e.Args {
			v, err := x(fmt.Sprintf("args[%d]", i), a)
			if err != nil {
				return sc, err
			}
			c.Args = append(c.Args, v)
		}
		if c.Dir, err = x("cwd", e.Cwd); err != nil {
			return sc, err
		}
		env, err := l.env(name, e, x)
		if err != nil {
			return sc, err
		}
		if env != nil {
			c.Env = append(os.Environ(), env...)
		}
		cfg.Command = c
	} else {
		if e.URL == "" {
			return sc, l.errf(name, "url", "is missing: an HTTP server needs its endpoint")
		}
		if e.Command != "" || len(e.Args) > 0 || len(e.Env) > 0 || e.EnvFile != "" || e.Cwd != "" {
			return sc, l.errf(name, "command", `, "args", "env", "envFile" and "cwd" apply to stdio servers only`)
		}
		u, err := x("url", e.URL)
		if err != nil {
			return sc, err
		}
		if err := checkHTTPURL(u); err != nil {
			return sc, l.errf(name, "url", "%v", err)
		}
		if kind == "sse" {
			cfg.SSEURL = u
		} else {
			cfg.URL = u
		}
		for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
			v, err := x("headers."+k, e.Headers[k])
			if err != nil {
				return sc, err
			}
			if cfg.Headers == nil {
				cfg.Headers = map[string][]string{}
			}
			cfg.Headers.Set(k, v)
		}
	}
	return l.apply(sc, kind, defaults, own)
}

// env reads envFile (if any) and env, env winning.
func (l *loader) env(name string, e *fileEntry, x func(field, s string) (string, error)) ([]string, error) {
	if e.EnvFile == "" && e.Env == nil {
		return nil, nil
	}
	env := []string{}
	if e.EnvFile != "" {
		path, err := x("envFile", e.EnvFile)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(l.dir, path)
		}
		vars, err := readEnvFile(path)
		if err != nil {
			return nil, l.errf(name, "envFile", "%v", err)
		}
		env = append(env, vars...)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		v, err := x("env."+k, e.Env[k])
		if err != nil {
			return nil, err
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// apply adds the "mcpool" settings (defaults, then the server's own) to sc.
func (l *loader) apply(sc ServerConfig, kind string, defaults, own json.RawMessage) (ServerConfig, error) {
	var s fileSettings
	field := "mcpool.servers." + sc.Name
	if defaults != nil {
		_ = strictish(defaults, &s, true) // checked in settings
	}
	if own != nil {
		if f, err := strictField(own, &s); err != nil {
			return sc, l.errf(sc.Name, field+dotted(f), "%s", jsonReason(err))
		}
	}
	c := &sc.Config
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setDur := func(dst *time.Duration, v *fileDuration) {
		if v != nil {
			*dst = time.Duration(*v)
		}
	}
	setInt(&c.MinSessions, s.MinSessions)
	setInt(&c.MaxSessions, s.MaxSessions)
	setInt(&c.MaxCallsPerSession, s.MaxCallsPerSession)
	setInt(&c.FailureThreshold, s.FailureThreshold)
	setDur(&c.AcquireTimeout, s.AcquireTimeout)
	setDur(&c.ConnectTimeout, s.ConnectTimeout)
	setDur(&c.DrainTimeout, s.DrainTimeout)
	setDur(&c.ToolCacheTTL, s.ToolCacheTTL)
	setDur(&c.HealthCheckInterval, s.HealthCheckInt)
	setDur(&c.PingTimeout, s.PingTimeout)
	setDur(&c.ProbeOnAcquire, s.ProbeOnAcquire)
	setDur(&c.MaxSessionLifetime, s.MaxSessionLifetime)
	setDur(&c.MaxIdleTime, s.MaxIdleTime)
	setDur(&c.BreakerCooldown, s.BreakerCooldown)
	if s.ProtocolVersion != nil {
		c.ProtocolVersion = *s.ProtocolVersion
	}
	if s.Balance != "" {
		b, err := ParseBalance(s.Balance)
		if err != nil {
			return sc, l.errf(sc.Name, field+".balance", "%v", err)
		}
		sc.Balance = b
	}
	if s.Auth != nil {
		if err := l.auth(sc.Name, field+".auth", kind, s.Auth); err != nil {
			return sc, err
		}
		sc.Auth = s.Auth
		c.BearerToken = s.Auth.Token
	}
	if _, err := c.validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return sc, l.errf(sc.Name, field, "%s %s", ce.Field, ce.Reason)
		}
		return sc, l.errf(sc.Name, field, "%v", err)
	}
	if s.Replicas == nil {
		return sc, nil
	}
	rfield := field + ".replicas"
	if kind == "stdio" {
		var n int
		if err := json.Unmarshal(s.Replicas, &n); err != nil || n < 1 {
			return sc, l.errf(sc.Name, rfield, "for a stdio server is a count of at least 1 (each replica is its own pool of processes)")
		}
		for range n {
			r := *c
			cmd := *c.Command
			cmd.Args, cmd.Env = slices.Clone(cmd.Args), slices.Clone(cmd.Env)
			r.Command = &cmd
			sc.Replicas = append(sc.Replicas, r)
		}
		return sc, nil
	}
	var urls []string
	if err := json.Unmarshal(s.Replicas, &urls); err != nil || len(urls) == 0 {
		return sc, l.errf(sc.Name, rfield, "for an HTTP server is a list of at least one URL")
	}
	for i, raw := range urls {
		f := fmt.Sprintf("%s[%d]", rfield, i)
		u, err := expand(raw, l.lookup)
		if err != nil {
			return sc, l.errf(sc.Name, f, "%v", err)
		}
		if err := checkHTTPURL(u); err != nil {
			return sc, l.errf(sc.Name, f, "%v", err)
		}
		r := *c
		r.Headers = c.Headers.Clone()
		if kind == "sse" {
			r.SSEURL = u
		} else {
			r.URL = u
		}
		sc.Replicas = append(sc.Replicas, r)
	}
	return sc, nil
}

// check applies the group-wide rules NewGroup applies, so that the file is
// named in their errors too.
func (l *loader) check(gc *GroupConfig) error {
	sep := gc.Separator
	if sep == "" {
		sep = DefaultSeparator
	}
	if strings.IndexFunc(sep, func(r rune) bool { return !toolNameChar(r) }) >= 0 || len(sep) > 8 {
		return l.errf("", "mcpool.separator", "%q may hold only A-Z a-z 0-9 _ - . and at most 8 of them", sep)
	}
	prefixes := map[string]string{}
	for _, s := range gc.Servers {
		p := sanitizeName(s.Name)
		if strings.Contains(p, sep) {
			return l.errf(s.Name, "", "the name contains the separator %q (once characters a tool name may not hold are replaced by _): namespaced tool names could not be split; rename the server or set mcpool.separator", sep)
		}
		if other, dup := prefixes[p]; dup {
			return l.errf(s.Name, "", "becomes %q in tool names, as server %q does: rename one", p, other)
		}
		prefixes[p] = s.Name
	}
	return nil
}

// expand replaces ${VAR}, ${VAR:-default} and ${env:VAR} in s. Its errors
// name the variable, never a value.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errors.New(`has "${" with no closing "}"`)
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := expr, "", false
		switch {
		case strings.HasPrefix(expr, "input:"):
			return "", fmt.Errorf("${%s} asks the user for a value (VS Code prompts for it); mcpool cannot: put the value in an environment variable and write ${env:NAME}", expr)
		case strings.HasPrefix(expr, "env:"):
			name = expr[len("env:"):]
		default:
			if j := strings.Index(expr, ":-"); j >= 0 {
				name, def, hasDef = expr[:j], expr[j+2:], true
			}
		}
		if !isVarName(name) {
			return "", fmt.Errorf("${%s} is not supported: write ${VAR}, ${VAR:-default} or ${env:VAR}", expr)
		}
		v, ok := lookup(name)
		if !ok || v == "" && hasDef {
			if !hasDef {
				return "", fmt.Errorf("${%s} is not set: set %s in the environment, or write ${%s:-default}", expr, name, name)
			}
			v = def
		}
		b.WriteString(v)
	}
}

func isVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// readEnvFile reads KEY=VALUE lines (blank lines, "#" comments and an
// "export " prefix allowed; values may be quoted). Its errors give line
// numbers, never values.
func readEnvFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	var env []string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !isVarName(k) {
			return nil, fmt.Errorf("%s line %d is not KEY=VALUE", path, n+1)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// strictish decodes raw into v; strict rejects unknown keys.
func strictish(raw json.RawMessage, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("has data after the object")
	}
	return nil
}

// strictField decodes raw into a new T strictly; on failure it returns the
// error with the field it is about, found by decoding key by key when
// encoding/json does not say (a custom decoder's error).
func strictField[T any](raw json.RawMessage, v *T) (field string, err error) {
	if err = strictish(raw, v, true); err == nil {
		return "", nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	if f := jsonField(err); f != "" {
		if _, top := m[f]; top || !strings.HasPrefix(err.Error(), "json: unknown field ") {
			return f, err
		}
		// An unknown key in a nested object ("auth"): encoding/json names
		// the key only, so find the object it is in.
		for _, k := range slices.Sorted(maps.Keys(m)) {
			one, _ := json.Marshal(map[string]json.RawMessage{k: m[k]})
			var probe T
			if strictish(one, &probe, true) != nil {
				return k + "." + f, err
			}
		}
		return f, err
	}
	if m != nil {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			one, _ := json.Marshal(map[string]json.RawMessage{k: m[k]})
			var probe T
			if kerr := strictish(one, &probe, true); kerr != nil {
				return k, kerr
			}
		}
	}
	return "", err
}

// jsonField returns the field an encoding/json error is about, if it says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

// jsonReason says what is wrong, without the value (it may be a secret).
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("want %s, got a JSON %s", jsonType(te.Type.String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "is not a known setting (check its spelling; see LoadGroupConfig's documentation)"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonType(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.Contains(goType, "int"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

// jsonProblem describes a syntax error with its line and column.
func jsonProblem(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
		col := int(se.Offset) - bytes.LastIndexByte(data[:se.Offset], '\n') - 1
		return fmt.Sprintf("is not valid JSON at line %d, column %d: %v", line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: want %s, got a JSON %s", te.Field, jsonType(te.Type.String()), te.Value)
	}
	return err.Error()
}

func dotted(field string) string {
	if field == "" {
		return ""
	}
	return "." + field
}

// stripJSONC blanks out the comments (// and /* */) and trailing commas
// that VS Code allows in its mcp.json (JSON with Comments), so that the
// standard library can decode it. It replaces them with spaces, keeping
// newlines, so line and column numbers in errors stay true.
func stripJSONC(data []byte) []byte {
	out := bytes.Clone(data)
	blank := func(i int) {
		if out[i] != '\n' && out[i] != '\r' {
			out[i] = ' '
		}
	}
	inString := false
	lastComma := -1 // a comma after a value, that a '}' or ']' may make trailing
	var prev byte   // the last character outside comments and whitespace
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString, prev = false, '"'
			}
			continue
		}
		switch {
		case c == '"':
			inString, lastComma = true, -1
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				blank(i)
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			stop := len(out)
			if end >= 0 {
				stop = i + 2 + end + 2
			}
			for ; i < stop; i++ {
				blank(i)
			}
			i--
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == ',':
			lastComma = -1
			if prev != 0 && prev != ',' && prev != '{' && prev != '[' && prev != ':' {
				lastComma = i
			}
			prev = c
		case c == '}' || c == ']':
			if lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma, prev = -1, c
		default:
			lastComma, prev = -1, c
		}
	}
	return out
}
