package mcpool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mcpool/mcpool/internal/errmsg"
)

// ErrNotFound means a [Group] has no server, tool, prompt or resource by
// the name given. The error is a [*NotFoundError] listing what exists.
var ErrNotFound = errors.New("mcpool: not found in the group")

// NotFoundError reports a name a [Group] cannot route. It matches
// ErrNotFound.
type NotFoundError struct {
	Kind   string // "server", "tool", "prompt" or "resource"
	Name   string // the name (or URI) asked for
	Server string // the server the name pointed at; "" if none
	// Known are the names that exist: the group's servers when the server
	// part was not recognised, else that server's tools or prompts, or the
	// resource URIs the group knows.
	Known []string
}

// Error names what was asked for and lists what exists (the first 20).
func (e *NotFoundError) Error() string {
	known := e.Known
	more := ""
	if len(known) > 20 {
		more = fmt.Sprintf(", and %d more", len(known)-20)
		known = known[:20]
	}
	list := strings.Join(known, ", ") + more
	if list == "" {
		list = "none"
	}
	switch {
	case e.Kind == "server":
		return fmt.Sprintf("mcpool: no server %q in the group (servers: %s)", e.Name, list)
	case e.Server == "" && e.Kind == "resource":
		return fmt.Sprintf("mcpool: no server of the group lists resource %q (resources: %s); for a URI from a resource template, read it with Group.Pool(server)", e.Name, list)
	case e.Server == "":
		return fmt.Sprintf("mcpool: no %s %q in the group: the name must start with a server's name and the separator (servers: %s)", e.Kind, e.Name, list)
	}
	return fmt.Sprintf("mcpool: no %s %q in the group: server %q has none by that name (its %ss: %s)", e.Kind, e.Name, e.Server, e.Kind, list)
}

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ServerError is one server's failure within a [Group]: from Start, Close,
// or a merged list. It unwraps to the cause, so errors.Is(err,
// ErrServerUnavailable) and the like see through it.
type ServerError struct {
	Server string
	Err    error
}

// Error names the server and the cause.
func (e *ServerError) Error() string {
	return fmt.Sprintf("server %q: %s", e.Server, unprefixed(e.Err))
}

// Unwrap returns the cause.
func (e *ServerError) Unwrap() error { return e.Err }

// ListError is returned by a Group's List methods when no server's list
// could be had. Failed names each server and its error.
type ListError struct {
	Kind   string // "tools", "prompts" or "resources"
	Failed []*ServerError
}

// Error names every server and its cause.
func (e *ListError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("mcpool: no server could list its %s: %s", e.Kind, strings.Join(parts, "; "))
}

// Unwrap returns the servers' errors.
func (e *ListError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}

// unprefixed is err's message without "mcpool: ", wherever a wrapped error
// repeats it: a message says it once, at its start.
func unprefixed(err error) string {
	return errmsg.Unprefixed(fmt.Sprint(err))
}
