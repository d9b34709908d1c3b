package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
)

// File is a config file, read: the servers as a [mcpool.GroupConfig], the
// gateway section, and warnings about settings it ignores.
type File struct {
	// Path is the file's path as given to [Load] or [Parse].
	Path string
	// Group holds the enabled servers, in file order ("mcpServers" first,
	// then "servers"), with the "mcpool" section's settings applied: ready
	// for [mcpool.NewGroup] once the caller has added what a file cannot
	// hold (a Logger, OnListChanged, OAuth handlers for ServerConfig.Auth).
	Group mcpool.GroupConfig
	// Gateway is the "gateway" section; zero when the file has none.
	Gateway Gateway
	// Warnings are one line each, naming the file, the server and the key:
	// settings of ours written where they are ignored, such as
	// "replicas" inside a mcpServers entry. Show them to the user once.
	Warnings []string
}

// Gateway is the "gateway" section of a config file: the mcpool gateway's
// settings, which other MCP clients ignore. Zero values mean the gateway's
// defaults.
type Gateway struct {
	// MaxInFlight caps the calls in flight across the gateway (the
	// gateway's default is 256).
	MaxInFlight int
	// MaxIsolatedSessions caps the upstream sessions held by downstream
	// sessions of isolated servers (the default is twice MaxInFlight).
	MaxIsolatedSessions int
	// Redis is a redis:// URL of a catalog store shared by gateway
	// replicas.
	Redis string
	// Stateless serves every request on its own, without Mcp-Session-Id.
	Stateless bool
	// AdvertiseURL is this replica's MCP endpoint as the other replicas
	// reach it (gateway.advertiseURL): they forward there the requests of
	// sessions whose isolated stdio servers run here. "" means the
	// command's --advertise-url, else one derived from a specific listen
	// address.
	AdvertiseURL string
	// Unprefixed serves the one server's tools and prompts under their
	// own names. The file is refused when it is set and the file has not
	// exactly one enabled server.
	Unprefixed bool
	// QueueWait bounds how long a call waits for a slot at MaxInFlight.
	QueueWait time.Duration
	// CallTimeout bounds one call, upstream included.
	CallTimeout time.Duration
	// Auth, if set, makes the gateway an OAuth 2.1 resource server
	// (gateway.auth).
	Auth *GatewayAuth
	// RateLimit is gateway.rateLimit.perIdentity: calls per second per
	// identity and server; nil means none.
	RateLimit *RateLimit
	// Servers are the per-server settings by server name, for the enabled
	// servers the section names. A server not named here is served with
	// the defaults (mode isolated).
	Servers map[string]GatewayServer
}

// GatewayServer is one server's settings in gateway.servers.
type GatewayServer struct {
	// Mode is "shared", "passthrough" or "isolated"; "" means isolated.
	Mode string
	// ForwardHeaders names the client request headers a passthrough server
	// receives; never Authorization (the client's token for the gateway is
	// never passed on). A passthrough server needs ForwardHeaders or
	// TokenExchange.
	ForwardHeaders []string
	// Tools filters the server's tools (deny wins; path.Match globs).
	Tools ToolFilter
	// Access restricts who sees and calls the server.
	Access AccessRule
	// TokenExchange, if set, gives each caller a token issued for the
	// upstream, exchanged for the caller's (mode passthrough).
	TokenExchange *TokenExchange
	// RateLimit overrides the gateway's per-identity rate limit for this
	// server.
	RateLimit *RateLimit
	// Spares is how many pre-warmed upstream sessions an isolated server
	// keeps ready; zero means the gateway's default (2), negative none
	// (the file's "spares": 0 gives -1: none).
	Spares int
	// MaxQueued caps the callers queued for this server when the gateway
	// is at MaxInFlight; zero means the gateway's default (64), negative
	// none.
	MaxQueued int
}

// The gateway's modes, as gateway.servers.NAME.mode spells them.
const (
	ModeShared      = "shared"
	ModePassthrough = "passthrough"
	ModeIsolated    = "isolated"
)

// FileError reports a problem in a config file. It matches
// [mcpool.ErrInvalidConfig]. It never holds a header value, an environment
// value or a URL's query: only where the problem is and what it is.
type FileError struct {
	File   string // the file's path as given
	Server string // the server's name; "" for the file as a whole
	// Field is where the problem is: in the server's entry (url,
	// headers.Authorization, args[2]) or in the file
	// (mcpool.servers.NAME.maxSessions, gateway.unprefixed); "" for the
	// whole entry or file.
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

// Is reports whether target is [mcpool.ErrInvalidConfig].
func (e *FileError) Is(target error) bool { return target == mcpool.ErrInvalidConfig }

// Load reads the config file at path, with variables from the
// environment. Every error is a [*FileError].
func Load(path string) (*File, error) {
	return LoadServer(path, "")
}

// LoadServer is Load for the one server named name (every server when
// name is ""): the file's other servers are left out as disabled ones
// are, so that a variable only they use need not be set, nor their
// entries valid beyond JSON. A name the file has no server of is a
// [*FileError] listing the servers it has.
func LoadServer(path, name string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err
		if u := errors.Unwrap(err); u != nil {
			reason = u
		}
		return nil, &FileError{File: path, Reason: fmt.Sprintf("cannot read: %v", reason)}
	}
	l := &loader{file: path, dir: filepath.Dir(path), lookup: os.LookupEnv, section: map[string]string{}, only: name}
	return l.parse(data)
}

// Parse is [Load] for a file already read: file names it in errors and
// warnings (and locates a relative envFile), and lookup reads variables;
// nil means os.LookupEnv.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*File, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l := &loader{file: file, dir: filepath.Dir(file), lookup: lookup, section: map[string]string{}}
	return l.parse(data)
}
