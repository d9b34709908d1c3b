package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// groupFlags name a config file of servers (mcpServers or VS Code's
// servers) instead of one server.
type groupFlags struct {
	config string
	server string
}

func (f *groupFlags) register(fs *flag.FlagSet) {
	fs.Var(nonEmpty{&f.config}, "config", "an MCP config `file` ({\"mcpServers\": …} or VS Code's {\"servers\": …}): use all its\n"+
		"servers as one group, tools named SERVER__TOOL, with the file's pool settings (bench runs\n"+
		"its pooled mode only, through the group)")
	fs.Var(nonEmpty{&f.server}, "server", "with --config, use only this server (by `name`), with its plain tool names; the\nfile's other servers are not read")
}

// used reports whether --config or --server was given.
func (f *groupFlags) used() bool { return f.config != "" || f.server != "" }

// check reports flags that do not go together.
func (f *groupFlags) check(t *targetFlags) error {
	if f.server != "" && f.config == "" {
		return usageErrorf("--server needs --config")
	}
	if f.config != "" && (t.url != "" || t.sse != "" || t.stdio != "") {
		return usageErrorf("give --config or one of --url, --sse and --stdio, not both")
	}
	if g := t.auth.given(); f.config != "" && len(g) > 0 {
		// Applying them to every server of the file would send one
		// server's credential to all the others.
		return usageErrorf("%s: credential flags apply to --url and --sse; with --config, give each server its own in the file (\"headers\", or \"auth\" for OAuth)", strings.Join(g, ", "))
	}
	return nil
}

// configGroup is a group made from --config, and how to name its tools.
type configGroup struct {
	g      *mcpool.Group
	server string // --server, or ""
	// stopAuth closes the OAuth redirect listeners of the servers' "auth".
	stopAuth func()
	// notice announces servers whose connects keep failing while the
	// command waits for them (connectwait.go); done once it has its answer.
	notice *connectNotice
}

// openGroup loads --config and makes the group (not started). With
// --server the group holds that server alone.
func openGroup(t *targetFlags, stderr io.Writer) (*configGroup, error) {
	if err := t.group.check(t); err != nil {
		return nil, err
	}
	// With --server, the file's other servers are not loaded: a variable
	// only they use need not be set.
	file, err := loadConfig(t.group.config, t.group.server, stderr)
	if err != nil {
		return nil, err
	}
	gc := &file.Group
	fromConfig.Store(true)
	credentialsGiven.Store(false)         // configureGroupAuth sets it for servers with credentials
	answers := t.answers.handlers(stderr) // elicit.go: one answerer, so prompts never interleave
	gc.Logger = slog.New(slog.DiscardHandler)
	if t.verbose {
		gc.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for i := range gc.Servers {
		sc := &gc.Servers[i]
		configs := []*mcpool.Config{&sc.Config}
		for j := range sc.Replicas {
			configs = append(configs, &sc.Replicas[j])
		}
		for _, c := range configs {
			addConfigSecrets(c) // redact.go
			c.ClientHandlers = answers
			if c.ConnectTimeout == 0 {
				c.ConnectTimeout = t.connectTimeout
			}
			if c.Command != nil && t.verbose {
				cmd := *c.Command
				cmd.Stderr = stderr
				c.Command = &cmd
			}
		}
	}
	stopAuth, err := configureGroupAuth(gc, stderr) // config_auth.go
	if err != nil {
		return nil, err
	}
	g, err := mcpool.NewGroup(*gc)
	if err != nil {
		stopAuth()
		return nil, err
	}
	notice := newConnectNotice(stderr)
	for _, sc := range gc.Servers {
		replicas := g.Replicas(sc.Name) // in configuration order
		for i, p := range replicas {
			cfg := &sc.Config
			if i > 0 {
				cfg = &sc.Replicas[i-1]
			}
			siblings := slices.Delete(slices.Clone(replicas), i, i+1)
			notice.watch(p, sc.Name, cfg, siblings...)
		}
	}
	return &configGroup{g: g, server: t.group.server, stopAuth: stopAuth, notice: notice}, nil
}

// loadConfig reads a config file (only the server named server, unless
// "") and prints its warnings on stderr, one line each.
func loadConfig(path, server string, stderr io.Writer) (*config.File, error) {
	file, err := config.LoadServer(path, server)
	if err != nil {
		return nil, err
	}
	for _, w := range file.Warnings {
		fmt.Fprintf(stderr, "mcpool: warning: %s\n", printable(w))
	}
	return file, nil
}

// toolName is the group's name for what the user typed: with --server the
// plain name gets the server's prefix.
func (c *configGroup) toolName(name string) string {
	if c.server == "" {
		return name
	}
	n, _ := c.g.Name(c.server, name)
	return n
}

// close closes the group on its own context: the command's may have run
// out, and sessions and stdio children must go all the same. When abrupt
// (the command failed, ran out of --timeout or was interrupted) the close
// has closeGrace, as a single server's (see shutdown).
func (c *configGroup) close(abrupt bool) {
	closeAll(abrupt, func(ctx context.Context) { _ = c.g.Close(ctx) }) // cleanup.go
	c.stopAuth()
}

// start starts every server; servers that fail are reported on stderr and
// left out, as they are of merged lists.
func (c *configGroup) start(ctx context.Context, stderr io.Writer) {
	err := c.g.Start(ctx)
	if err != nil && ctx.Err() == nil {
		for _, line := range serverErrors(err) {
			fmt.Fprintf(stderr, "mcpool: %s\n", line)
		}
	}
}

// serverErrors splits a joined group error into one line per server.
func serverErrors(err error) []string {
	var lines []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			lines = append(lines, oneLine(e))
		}
		return lines
	}
	return []string{oneLine(err)}
}

// errPartial reports servers left out of a merged list: the output is
// printed, and the exit status says it is incomplete.
type errPartial struct{ servers []string }

// Error names the servers left out.
func (e *errPartial) Error() string {
	return fmt.Sprintf("left out of the list, unreachable: %s (see 'mcpool servers --config FILE')", strings.Join(e.servers, ", "))
}

// groupTools lists the group's tools (or one server's, by their plain
// names) for tools --config.
func groupTools(ctx context.Context, f *oneShotFlags, stdout, stderr io.Writer) (err error) {
	c, err := openGroup(&f.target, stderr)
	if err != nil {
		return err
	}
	defer func(ctx context.Context) { c.close(err != nil || ctx.Err() != nil) }(ctx) // the command's ctx, not the --timeout one below
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// No Start: the list connects each server as it needs, side by side,
	// so that one server riding out failing connects (or slow to start)
	// does not hold up the others' lists until --timeout. Its error, or
	// the servers left out, are reported once, below.
	var tools []*mcp.Tool
	if c.server != "" {
		tools, err = serverTools(ctx, c)
	} else {
		tools, err = c.g.ListTools(ctx)
	}
	c.notice.done()
	if err != nil {
		return withTimeout(ctx, f.timeout, err)
	}
	if tools == nil {
		tools = []*mcp.Tool{}
	}
	if err := printJSON(stdout, tools); err != nil {
		return err
	}
	var down []string
	for _, s := range c.g.Stats().Servers {
		if s.ListError != "" {
			down = append(down, fmt.Sprintf("%s (%s)", s.Name, s.ListError))
		}
	}
	if down != nil {
		return &errPartial{down}
	}
	return nil
}

// serverTools lists one server's tools by their own names, from the first
// replica that answers.
func serverTools(ctx context.Context, c *configGroup) ([]*mcp.Tool, error) {
	var err error
	for _, p := range c.g.Replicas(c.server) {
		var tools []*mcp.Tool
		if tools, err = p.ListTools(ctx); err == nil {
			return tools, nil
		}
	}
	return nil, err
}

// groupCall calls one tool for call --config.
func groupCall(ctx context.Context, f *oneShotFlags, params *mcp.CallToolParams, stderr io.Writer) (_ *mcp.CallToolResult, err error) {
	c, err := openGroup(&f.target, stderr)
	if err != nil {
		return nil, err
	}
	defer func(ctx context.Context) { c.close(err != nil || ctx.Err() != nil) }(ctx) // the command's ctx, not the --timeout one below
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// No Start: the call connects the one server it needs.
	p := *params
	p.Name = c.toolName(params.Name)
	res, err := c.g.CallTool(ctx, &p)
	c.notice.done()
	return res, withTimeout(ctx, f.timeout, err)
}

func withTimeout(ctx context.Context, timeout time.Duration, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v (--timeout): %w", timeout, err)
	}
	return err
}

// groupBench runs bench's pooled mode through the group of --config: the
// calls go to the tool's server and are balanced over its replicas.
func groupBench(ctx context.Context, b *benchFlags, params func() *mcp.CallToolParams, stdout, stderr io.Writer) (err error) {
	if !slices.Contains(b.modes, modePooled) {
		return usageErrorf("--config runs the pooled mode only, through the group: add pooled to --modes")
	}
	if b.chaos > 0 {
		return usageErrorf("--chaos is not available with --config")
	}
	c, err := openGroup(&b.target, stderr)
	if err != nil {
		return err
	}
	defer func(ctx context.Context) { c.close(err != nil || ctx.Err() != nil) }(ctx) // the command's ctx, not the --timeout one below
	tool := c.toolName(b.tool)
	wctx, cancel := context.WithTimeout(ctx, b.timeout)
	c.start(wctx, stderr)
	tools, err := c.g.ListTools(wctx)
	c.notice.done()
	cancel()
	if err != nil {
		return fmt.Errorf("warming the group: %w", err)
	}
	found := false
	for _, t := range tools {
		found = found || t.Name == tool
	}
	if !found {
		names := make([]string, len(tools))
		for i, t := range tools {
			names[i] = t.Name
		}
		return fmt.Errorf("the group has no tool %q (it has: %s)", tool, strings.Join(names, ", "))
	}
	r, err := drive(ctx, modePooled, b, nil, stderr, func(ctx context.Context) error {
		if _, err := c.g.ListTools(ctx); err != nil {
			return fmt.Errorf("listing tools: %w", err)
		}
		p := params()
		p.Name = tool
		return callError(c.g.CallTool(ctx, p))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", modePooled, err)
	}
	var notes []string
	for _, s := range c.g.Stats().Servers {
		for _, rs := range s.Replicas {
			if rs.Calls > 0 {
				notes = append(notes, fmt.Sprintf("%s %s: %d calls, %d moved to another replica, %s",
					s.Name, rs.Target, rs.Calls, rs.Failovers, plural(int(rs.Pool.SessionsCreated), "session")))
			}
		}
	}
	r.note = strings.Join(notes, "; ")
	runs := []*modeRun{r}
	if b.json {
		err = writeJSON(stdout, runs)
	} else {
		err = writeTable(stdout, runs, nil)
	}
	if err != nil {
		return err
	}
	if r.errors > 0 {
		return fmt.Errorf("%s: %d of %d calls failed; first error: %w", r.mode, r.errors, r.calls, r.firstErr)
	}
	return nil
}
