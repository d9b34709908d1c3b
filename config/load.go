package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
)

type loader struct {
	file    string
	dir     string
	lookup  func(string) (string, bool)
	section map[string]string // server name → "mcpServers" or "servers"
	enabled map[string]bool   // servers not disabled
	only    string            // LoadServer's one server; "" for all
	out     *File
}

func (l *loader) errf(server, field, format string, a ...any) error {
	return &FileError{File: l.file, Server: server, Field: field, Reason: fmt.Sprintf(format, a...)}
}

func (l *loader) warnf(server, format string, a ...any) {
	w := l.file + ": "
	if server != "" {
		w += fmt.Sprintf("server %q: ", server)
	}
	l.out.Warnings = append(l.out.Warnings, w+fmt.Sprintf(format, a...))
}

// entryAt is where a server's entry is: "mcpServers.NAME" or
// "servers.NAME".
func (l *loader) entryAt(name string) string {
	if s := l.section[name]; s != "" {
		return s + "." + name
	}
	return "mcpServers." + name
}

// fileEntry is one server in mcpServers or servers: the keys every MCP
// client reads.
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

// mcpoolSection is the "mcpool" object.
type mcpoolSection struct {
	Separator string          `json:"separator"`
	Defaults  json.RawMessage `json:"defaults"`
	Servers   json.RawMessage `json:"servers"`
}

// fileSettings are a server's settings in mcpool.servers.NAME (and, but
// for replicas and auth, in mcpool.defaults).
type fileSettings struct {
	Replicas           json.RawMessage `json:"replicas"`
	Balance            *string         `json:"balance"`
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
	Auth               json.RawMessage `json:"auth"`
}

// overlay sets in s the settings o has.
func overlay(s, o *fileSettings) {
	sv, ov := reflect.ValueOf(s).Elem(), reflect.ValueOf(o).Elem()
	for i := range ov.NumField() {
		if f := ov.Field(i); !f.IsNil() {
			sv.Field(i).Set(f)
		}
	}
}

// fileDuration is a Go duration string in the file ("30s").
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

func (l *loader) parse(data []byte) (*File, error) {
	var top map[string]json.RawMessage
	// A byte order mark, which Windows editors write, would otherwise be
	// "invalid character": blanked, so errors keep their columns.
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		data = append([]byte("   "), data[3:]...)
	}
	data = stripJSONC(data)
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, l.errf("", "", "%s", jsonProblem(data, err))
	}
	if top == nil {
		return nil, l.errf("", "", "is not a JSON object")
	}
	l.out = &File{Path: l.file}
	topKeys, _, _ := objectKeys(data)
	for _, k := range topKeys {
		if where := l.belongs(atTop, k, ""); where != "" {
			l.warnf("", "%q belongs in %s, not at the top level: it is ignored there", k, where)
		}
	}

	names, entries, err := l.entries(top["mcpServers"], "mcpServers")
	if err != nil {
		return nil, err
	}
	names2, entries2, err := l.entries(top["servers"], "servers")
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
	if top["mcpServers"] == nil && top["servers"] == nil {
		return nil, l.errf("", "", `has no "mcpServers" (Claude, Cursor) or "servers" (VS Code) object`)
	}

	// The entries, decoded; disabled ones are left out from here on.
	decoded := map[string]*fileEntry{}
	l.enabled = map[string]bool{}
	var enabled []string
	for _, name := range names {
		e := &fileEntry{}
		if err := json.Unmarshal(entries[name], e); err != nil {
			return nil, l.errf(name, jsonField(err), "%s", jsonReason(err))
		}
		if e.Disabled || l.only != "" && name != l.only {
			continue
		}
		decoded[name] = e
		l.enabled[name] = true
		enabled = append(enabled, name)
		keys, _, _ := objectKeys(entries[name])
		for _, k := range keys {
			if where := l.belongs(atEntry, k, name); where != "" {
				l.warnf(name, "%q belongs in %s, not in %s: it is ignored there", k, where, l.entryAt(name))
			}
		}
	}
	if l.only != "" && entries[l.only] == nil {
		return nil, l.errf("", "", "has no server %q (servers: %s)", l.only, strings.Join(names, ", "))
	}
	if len(enabled) == 0 {
		return nil, l.errf("", "", "lists no server (or every one is disabled)")
	}

	// The sections of ours: servers they name must be in the file; their
	// strings are expanded, but for disabled servers'.
	sections := map[string]json.RawMessage{}
	for _, sec := range []string{"mcpool", "gateway"} {
		raw := top[sec]
		if raw == nil || string(raw) == "null" {
			continue
		}
		if err := l.namedServers(sec, raw, entries); err != nil {
			return nil, err
		}
		if raw, err = l.expandSection(sec, raw); err != nil {
			return nil, err
		}
		sections[sec] = raw
	}

	settings, defaults, err := l.settings(sections["mcpool"])
	if err != nil {
		return nil, err
	}
	gc := &l.out.Group
	for _, name := range enabled {
		sc, err := l.server(name, decoded[name], defaults, settings[name])
		if err != nil {
			return nil, err
		}
		gc.Servers = append(gc.Servers, sc)
	}
	if err := l.gateway(sections["gateway"]); err != nil {
		return nil, err
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return l.out, nil
}

// entries decodes an object of servers, keeping the file's order.
func (l *loader) entries(raw json.RawMessage, key string) ([]string, map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if raw == nil || string(raw) == "null" {
		return nil, m, nil
	}
	names, vals, err := objectKeys(raw)
	if err != nil {
		return nil, nil, l.errf("", key, "must be an object of servers by name")
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return nil, nil, l.errf(name, "", "is listed twice in %q", key)
		}
		if name == "" {
			return nil, nil, l.errf("", key, "has a server with an empty name")
		}
		seen[name] = true
		m[name] = vals[name]
		l.section[name] = key
	}
	return names, m, nil
}

// namedServers checks that the servers named in SECTION.servers are in
// the file.
func (l *loader) namedServers(sec string, raw json.RawMessage, entries map[string]json.RawMessage) error {
	var s struct {
		Servers json.RawMessage `json:"servers"`
	}
	if json.Unmarshal(raw, &s) != nil || s.Servers == nil {
		return nil // the section's decoding says what is wrong
	}
	names, _, err := objectKeys(s.Servers)
	if err != nil {
		return nil
	}
	for _, name := range names {
		if _, ok := entries[name]; !ok {
			return l.errf(name, sec+".servers."+name, `has settings but is not in "mcpServers" or "servers" (check its spelling)`)
		}
	}
	return nil
}

// expandSection expands the variables in the strings of a section of
// ours, but for those of disabled servers.
func (l *loader) expandSection(sec string, raw json.RawMessage) (json.RawMessage, error) {
	return expandJSON(raw, []string{sec}, func(path []string, s string) (string, error) {
		server := ""
		if len(path) >= 3 && path[1] == "servers" {
			server = path[2]
			if !l.enabled[server] {
				return s, nil
			}
		}
		v, err := expand(s, l.lookup)
		if err != nil {
			return "", l.errf(server, fieldPath(path), "%v", err)
		}
		return v, nil
	})
}

// settings decodes the "mcpool" object: the separator, the defaults, and
// each server's own settings (raw, by name).
func (l *loader) settings(raw json.RawMessage) (map[string]json.RawMessage, *fileSettings, error) {
	if raw == nil {
		return nil, nil, nil
	}
	var sec mcpoolSection
	if err := l.decodeObject(raw, &sec, "", "mcpool", atMCPool); err != nil {
		return nil, nil, err
	}
	l.out.Group.Separator = sec.Separator
	var own map[string]json.RawMessage
	if sec.Servers != nil {
		var err error
		if _, own, err = objectKeys(sec.Servers); err != nil {
			return nil, nil, l.errf("", "mcpool.servers", "must be an object of settings by server name")
		}
	}
	if sec.Defaults == nil {
		return own, nil, nil
	}
	defaults := &fileSettings{}
	if err := l.decodeObject(sec.Defaults, defaults, "", "mcpool.defaults", atDefaults); err != nil {
		return nil, nil, err
	}
	if defaults.Replicas != nil {
		return nil, nil, l.errf("", "mcpool.defaults.replicas", "belongs to one server: move it to mcpool.servers.NAME")
	}
	if defaults.Auth != nil {
		return nil, nil, l.errf("", "mcpool.defaults.auth", "belongs to one server: move it to mcpool.servers.NAME")
	}
	if defaults.Balance != nil {
		if _, err := mcpool.ParseBalance(*defaults.Balance); err != nil {
			return nil, nil, l.errf("", "mcpool.defaults.balance", "%v", err)
		}
	}
	return own, defaults, nil
}

// server builds one server's ServerConfig.
func (l *loader) server(name string, e *fileEntry, defaults *fileSettings, own json.RawMessage) (mcpool.ServerConfig, error) {
	sc := mcpool.ServerConfig{Name: name}
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
		c := &mcpool.Command{}
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
func (l *loader) apply(sc mcpool.ServerConfig, kind string, defaults *fileSettings, own json.RawMessage) (mcpool.ServerConfig, error) {
	var s fileSettings
	if defaults != nil {
		s = *defaults
	}
	field := "mcpool.servers." + sc.Name
	if own != nil {
		var o fileSettings
		if err := l.decodeObject(own, &o, sc.Name, field, atMCPoolServer); err != nil {
			return sc, err
		}
		overlay(&s, &o)
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
	if s.Balance != nil {
		b, err := mcpool.ParseBalance(*s.Balance)
		if err != nil {
			return sc, l.errf(sc.Name, field+".balance", "%v", err)
		}
		sc.Balance = b
	}
	if s.Auth != nil {
		a := &mcpool.ServerAuth{}
		if err := l.decodeObject(s.Auth, a, sc.Name, field+".auth", atAuth); err != nil {
			return sc, err
		}
		if err := l.auth(sc.Name, field+".auth", kind, a); err != nil {
			return sc, err
		}
		sc.Auth = a
		c.BearerToken = a.Token
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
	for _, u := range urls { // expanded with the section
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

// auth checks that a's fields go together.
func (l *loader) auth(server, field, kind string, a *mcpool.ServerAuth) error {
	switch {
	case kind == "stdio":
		return l.errf(server, field, `applies to HTTP servers: a stdio server takes its credentials from its "env"`)
	case a.Token != "" && (a.OAuth || a.ClientID != ""):
		return l.errf(server, field, `has "token" and OAuth ("oauth", "clientId"): choose one`)
	case !a.OAuth && a.ClientID != "" && a.ClientSecret == "":
		return l.errf(server, field, `has "clientId" without "oauth": the client-credentials grant needs "clientSecret" too; add "oauth": true to sign in through a browser`)
	case a.ClientSecret != "" && a.ClientID == "":
		return l.errf(server, field, `has "clientSecret" without "clientId"`)
	case !a.OAuth && a.ClientMetadataURL != "":
		return l.errf(server, field, `has "clientMetadataUrl" without "oauth": true`)
	case (a.OAuth || a.ClientID != "") && kind == "sse":
		return l.errf(server, field, `OAuth works with streamable HTTP servers only, not "sse"`)
	}
	return nil
}

// validate applies the rules of [mcpool.GroupConfig.Validate], which
// NewGroup applies too, and names the file's fields in its error.
func (l *loader) validate() error {
	err := l.out.Group.Validate()
	var ce *mcpool.ConfigError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	switch ce.Field {
	case "Separator":
		return l.errf("", "mcpool.separator", "%s", ce.Reason)
	case "Unprefixed":
		return l.errf("", "gateway.unprefixed", "%s", ce.Reason)
	}
	rest, ok := strings.CutPrefix(ce.Field, "Servers[")
	q, qerr := strconv.QuotedPrefix(rest)
	if !ok || qerr != nil {
		return l.errf("", "", "%s %s", ce.Field, ce.Reason)
	}
	name, _ := strconv.Unquote(q)
	f := strings.TrimPrefix(strings.TrimPrefix(rest[len(q):], "]"), ".")
	replica := -1
	if r, ok := strings.CutPrefix(f, "Replicas["); ok {
		if i := strings.Index(r, "]"); i > 0 {
			replica, _ = strconv.Atoi(r[:i])
			f = strings.TrimPrefix(r[i+1:], ".")
		}
	}
	switch f {
	case "Name":
		return l.errf(name, "", "%s", ce.Reason)
	case "URL", "SSEURL":
		if replica >= 0 {
			return l.errf(name, fmt.Sprintf("mcpool.servers.%s.replicas[%d]", name, replica), "%s", ce.Reason)
		}
		return l.errf(name, "url", "%s", ce.Reason)
	case "Command.Path":
		return l.errf(name, "command", "%s", ce.Reason)
	}
	return l.errf(name, "mcpool.servers."+name, "%s %s", f, ce.Reason)
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
