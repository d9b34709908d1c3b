package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mcpool/mcpool"
)

func TestErrors(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"no command", nil, 2, ""}, // checked apart below: the usage goes to stderr
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad flag", []string{"bench", "--bogus"}, 2, "-bogus"},
		{"bad flag value", []string{"bench", "--calls", "many"}, 2, "-calls"},
		{"zero calls", []string{"bench", "--calls", "0"}, 2, "--calls"},
		{"unknown mode", []string{"bench", "--modes", "per-call,turbo"}, 2, "turbo"},
		{"invalid --args", []string{"bench", "--args", "{bad"}, 2, "--args"},
		{"--args not an object", []string{"bench", "--args", "[1]"}, 2, "--args"},
		{"invalid call arguments", []string{"call", "echo", "{bad"}, 2, "JSON"},
		{"call without tool", []string{"call"}, 2, "TOOL"},
		{"two servers", []string{"tools", "--url", "http://127.0.0.1:1/mcp", "--stdio", "x"}, 2, "at most one"},
		{"bad url", []string{"tools", "--url", "ftp://127.0.0.1/mcp"}, 2, "URL"},
		{"unterminated quote", []string{"tools", "--stdio", `"x`}, 2, "quote"},
		{"demo-server both", []string{"demo-server", "--stdio", "--http", "127.0.0.1:0"}, 2, "not both"},
		{"missing program", []string{"tools", "--stdio", "/nonexistent/mcp-server"}, 1, "connect"},
		{"unknown tool", []string{"call", "nope"}, 1, "nope"},
		{"unknown tool bench", []string{"bench", "--tool", "nope"}, 1, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.args...)
			if c.args == nil {
				if r.code != 2 || !strings.Contains(r.stderr, "Commands:") {
					t.Errorf("no command: status %d, stderr %q; want 2 and the usage", r.code, r.stderr)
				}
				return
			}
			wantOneLineError(t, r, c.code, c.mention)
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%v: status %d, stderr %q; want 0 and nothing", args, r.code, r.stderr)
		}
		for _, name := range []string{"bench", "tools", "call", "demo-server"} {
			if !strings.Contains(r.stdout, "\n  "+name+" ") {
				t.Errorf("%v: usage does not list %s:\n%s", args, name, r.stdout)
			}
		}
	}
	for _, args := range [][]string{{"bench", "-h"}, {"help", "bench"}} {
		r := runCLI(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "-concurrency") || r.stderr != "" {
			t.Errorf("%v: status %d, stdout %q, stderr %q; want 0 and bench's flags", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestSplitWords(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  node  server.js\tstdio ", []string{"node", "server.js", "stdio"}},
		{`'/path with/space' -x`, []string{"/path with/space", "-x"}},
		{`a "b c" d`, []string{"a", "b c", "d"}},
		{`"say \"hi\"" 'it''s'`, []string{`say "hi"`, "its"}},
		{`"a\b" c\ d`, []string{`a\b`, "c d"}},
		{`''`, []string{""}},
		{`x"y z"w`, []string{"xy zw"}},
	}
	for _, c := range cases {
		got, err := splitWords(c.in)
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := splitWords(bad); err == nil {
			t.Errorf("splitWords(%q): no error", bad)
		}
	}
}

// A library error wrapped inside the command's own still yields one line
// with one "mcpool: ".
func TestReportSaysMcpoolOnce(t *testing.T) {
	var stderr strings.Builder
	err := fmt.Errorf("pooled: 3 of 10 calls failed; first error: %w",
		&mcpool.SessionLostError{Tool: "echo", Cause: io.EOF})
	if code := report(&stderr, "bench", err); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if got := stderr.String(); strings.Count(got, "mcpool:") != 1 || !strings.HasPrefix(got, "mcpool: pooled: 3 of 10") {
		t.Errorf("stderr %q, want one line saying mcpool: once", got)
	}
}
