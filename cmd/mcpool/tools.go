package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// oneShotFlags are those of tools and call.
type oneShotFlags struct {
	target  targetFlags
	timeout time.Duration
}

func (f *oneShotFlags) parse(name, synopsis string, args []string, stdout io.Writer) ([]string, error) {
	fs := newFlagSet(name)
	f.target.register(fs)
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command, connect included")
	rest, err := parseFlags(fs, args, synopsis, stdout)
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, usageErrorf("--timeout must be positive")
	}
	return rest, nil
}

func runTools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f oneShotFlags
	rest, err := f.parse("tools", "tools [--url URL | --sse URL | --stdio CMD | --config FILE [--server NAME]] [flags]", args, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	if f.target.group.used() {
		return groupTools(ctx, &f, stdout, stderr)
	}
	var tools []*mcp.Tool
	err = withPool(ctx, &f, stderr, func(ctx context.Context, p *mcpool.Pool) error {
		tools, err = p.ListTools(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if tools == nil {
		tools = []*mcp.Tool{} // "[]", not "null", for a server with no tools
	}
	return printJSON(stdout, tools)
}

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f oneShotFlags
	rest, err := f.parse("call", "call [flags] TOOL [JSON arguments]", args, stdout)
	if err != nil {
		return err
	}
	if len(rest) == 0 || len(rest) > 2 {
		return usageErrorf("want TOOL and optional JSON arguments, got %d arguments", len(rest))
	}
	params := &mcp.CallToolParams{Name: rest[0], Arguments: map[string]any{}}
	if len(rest) == 2 {
		if params.Arguments, err = parseArguments(rest[1]); err != nil {
			return err
		}
	}
	var res *mcp.CallToolResult
	if f.target.group.used() {
		res, err = groupCall(ctx, &f, params, stderr)
	} else {
		err = withPool(ctx, &f, stderr, func(ctx context.Context, p *mcpool.Pool) error {
			res, err = p.CallTool(ctx, params)
			return err
		})
	}
	if err != nil {
		return err
	}
	if err := printJSON(stdout, res); err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool %s reported an error (isError: true)", params.Name)
	}
	return nil
}

// withPool opens the target, runs fn on a one-session pool within the
// command's timeout, and tears both down: fully after a normal end, within
// closeGrace after a failure, the timeout or a signal.
func withPool(ctx context.Context, f *oneShotFlags, stderr io.Writer, fn func(context.Context, *mcpool.Pool) error) error {
	tgt, err := f.target.open(stderr)
	if err != nil {
		return err
	}
	p, err := mcpool.New(tgt.poolConfig(1, 1, 0))
	if err != nil {
		tgt.close()
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	err = startPool(tctx, p, tgt, &f.target, stderr) // connectwait.go
	if err == nil {
		err = fn(tctx, p)
	}
	shutdown(err != nil || tctx.Err() != nil, tgt, p)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v (--timeout): %w", f.timeout, err)
	}
	return err
}

// parseArguments parses a tool's arguments, which MCP wants as an object.
// Numbers keep their digits (json.Number): an id past 2^53 or a decimal
// with many places reaches the server as it was typed, not as a float64.
func parseArguments(s string) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	err := dec.Decode(&m)
	if err == nil && m == nil {
		err = fmt.Errorf("not an object")
	}
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			err = fmt.Errorf("more after the object")
		}
	}
	if err != nil {
		return nil, usageErrorf("arguments %q are not a JSON object: %v", s, err)
	}
	return m, nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
