// Command mcpool measures what pooling MCP client sessions buys against a
// real server, and lists or calls tools on one. With no server named it
// serves its own demo server on loopback, so it needs nothing installed.
//
// Usage:
//
//	mcpool bench [flags]              compare per-call, exclusive and pooled sessions
//	mcpool tools [flags]              list a server's tools as JSON
//	mcpool call [flags] TOOL [JSON]   call one tool and print its result as JSON
//	mcpool servers --config FILE      show the status of each server of a config file
//	mcpool demo-server [flags]        serve the embedded demo server
//	mcpool version                    print the version (also --version)
//	mcpool help [COMMAND]             print usage
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/errmsg"
)

// Exit statuses: scripts tell a mistake in the command line from a failure
// at run time.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; tests call it in process. The first SIGINT or
// SIGTERM cancels the work under way, which then winds down within about a
// second; a second one exits at once.
func run(args []string, stdout, stderr io.Writer) int {
	// Several goroutines write to stderr (loggers, the progress line, the
	// wait notice, the signal handler): each write goes whole.
	stderr = &lockedWriter{w: stderr}
	ctx, stop := withSignals(stderr, exit)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// command is one subcommand. Its func returns a *usageError for mistakes in
// the command line and any other error for failures at run time.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"bench", "compare per-call, exclusive and pooled sessions on one workload", runBench},
	{"tools", "list a server's tools as JSON", runTools},
	{"call", "call one tool (TOOL [JSON arguments]) and print its result as JSON", runCall},
	{"servers", "show each server of a config file (--config): status, sessions, tools", runServers},
	{"demo-server", "serve the embedded demo server over HTTP or stdio", runDemoServer},
	{"gateway", "serve a config's servers to any MCP client through pooled sessions", runGateway},
	{"version", "print mcpool's version, the Go version and the go-sdk version", runVersion},
}

// runContext dispatches to a subcommand and maps its error to one line on
// stderr and an exit status.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return runHelp(rest, stdout, stderr)
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands {
		if c.name == name {
			err := c.run(ctx, rest, stdout, stderr)
			var in *interrupted
			if err != nil && errors.As(context.Cause(ctx), &in) {
				// Whatever the work said on its way out (a context
				// error, a cancelled call), the signal is the reason.
				fmt.Fprintf(stderr, "mcpool: %s: %s\n", name, in)
				return exitInterrupted(in.sig)
			}
			return report(stderr, name, err)
		}
	}
	return report(stderr, "", usageErrorf("unknown command %q (commands: %s)", name, commandNames()))
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	// "mcpool help bench" is "mcpool bench -h".
	for _, c := range commands {
		if c.name == args[0] {
			return report(stderr, c.name, c.run(context.Background(), []string{"-h"}, stdout, stderr))
		}
	}
	return report(stderr, "", usageErrorf("unknown command %q (commands: %s)", args[0], commandNames()))
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "mcpool: pooled MCP client sessions, measured.\n\nUsage:\n  mcpool COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help         print this, or a command's flags (mcpool help COMMAND)\n\n"+
		"bench, tools and call take --url URL, --sse URL or --stdio \"CMD ARGS\" to name\n"+
		"a server; without them they start the embedded demo server (tools: echo,\n"+
		"sleep, structured) on loopback HTTP. --timeout bounds tools and call (and\n"+
		"each call of bench), --connect-timeout each connect.\n\n"+
		"--config FILE names every server of an MCP config file ({\"mcpServers\": …}\n"+
		"or VS Code's {\"servers\": …}) instead: tools are named SERVER__TOOL, and\n"+
		"--server NAME keeps to one server with its plain tool names.\n"+
		"Ctrl-C (SIGINT) or SIGTERM stops a command within about a second, cancelling\n"+
		"its calls: bench, tools and call exit with status 130 or 143, demo-server\n"+
		"with 0. A second one exits at once.\n")
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

// Error is the message, without the "mcpool: " prefix.
func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// errHelp reports that -h was asked for and answered: exit status 0.
var errHelp = errors.New("help printed")

// nextTry matches the part of an *UnavailableError's message that says when
// the next connect comes.
var nextTry = regexp.MustCompile(` \(next try in [^)]*\)`)

// withoutNextTry drops from msg what the library's *UnavailableError says of
// its pool's next connect: the command ends and makes none.
func withoutNextTry(msg string) string { return nextTry.ReplaceAllString(msg, "") }

// report prints err as one line on stderr and returns the exit status.
func report(stderr io.Writer, cmd string, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	err = explainError(err) // auth.go: 401s explained
	msg := withoutNextTry(withoutPrefix(err))
	// Errors from transports and servers may span lines; scripts and people
	// both read one line more easily.
	msg = strings.Join(strings.Fields(printable(hideSecrets(msg))), " ") // redact.go, untrusted.go
	var ue *usageError
	usage := errors.As(err, &ue) || errors.Is(err, mcpool.ErrInvalidConfig)
	if usage && cmd != "" {
		msg = fmt.Sprintf("%s: %s (see 'mcpool help %s')", cmd, msg, cmd)
	} else if usage {
		msg += " (see 'mcpool help')"
	}
	fmt.Fprintf(stderr, "mcpool: %s\n", msg)
	if usage {
		return exitUsage
	}
	return exitFailure
}

// withoutPrefix is err's message without the library's "mcpool: "
// prefixes, which wrapped errors carry in the middle as well: the line
// printed says "mcpool: " once, at its start.
func withoutPrefix(err error) string {
	return errmsg.Unprefixed(err.Error())
}

// newFlagSet returns a flag set that reports errors to us instead of
// printing its own usage dump, so a bad flag costs one line of output.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may come after positional ones ("call echo --url U"), which the flag
// package alone does not allow; "--" ends the flags. For -h it prints the
// command's flags to stdout and returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) ([]string, error) {
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: mcpool %s\n\nFlags:\n", synopsis)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{withoutSecretValue(fs, err.Error())}
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p to the underlying writer, one call at a time.
func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
