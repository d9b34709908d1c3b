package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestBrowsable(t *testing.T) {
	for u, want := range map[string]bool{
		"https://auth.example.com/consent?x=1": true,
		"HTTPS://auth.example.com/":            true,
		"http://127.0.0.1:8080/cb":             true,
		"http://[::1]:8080/cb":                 true,
		"http://localhost/cb":                  true,
		"http://auth.example.com/":             false, // plain http off this machine
		"http://127.0.0.1.evil.example/":       false,
		"file:///etc/passwd":                   false,
		"javascript:alert(1)":                  false,
		"vscode://ext/install?x":               false,
		"ms-settings:privacy":                  false,
		"smb://host/share":                     false,
		"https://bank.example@evil.example/":   false, // user info misleads
		"https:///nohost":                      false,
		"//auth.example.com/":                  false,
		"":                                     false,
		"https://a.example/\x1b[2J":            false,
	} {
		if got := browsable(u); got != want {
			t.Errorf("browsable(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	in := "a\x1b[2Jb\tc\nd\x07e\x7ff\u009bg\u0085h\x00i\r" + "\x9b" + "j é 世"
	got := printable(in)
	if want := "a[2Jb\tc\nde" + "fghi" + "\uFFFD" + "j é 世"; got != want {
		t.Errorf("printable(%q) = %q, want %q", in, got, want)
	}
}

// hasControl reports whether s holds a character printable strips.
func hasControl(s string) bool { return printable(s) != strings.ToValidUTF8(s, "\uFFFD") }

// A URL mode elicitation for anything but https (or http to this machine)
// is declined without being shown or opened, even when the person would
// say yes; an https one is offered.
func TestElicitURLOnlyBrowsable(t *testing.T) {
	t.Setenv("BROWSER", "none") // opening is checked in TestBrowsable
	for _, u := range []string{"file:///etc/passwd", "vscode://evil/run", "javascript:alert(1)", "http://203.0.113.9/x", "https://bank.example@evil.example/"} {
		var prompt bytes.Buffer
		a := &answerer{prompt: &prompt, lines: newLineReader(strings.NewReader("y\n"))}
		res, err := a.elicit(context.Background(), &mcp.ElicitRequest{Params: &mcp.ElicitParams{Mode: "url", URL: u, Message: "open me", ElicitationID: "1"}})
		if err != nil || res.Action != "decline" {
			t.Errorf("URL %q: %v, %v; want decline", u, res, err)
		}
		if strings.Contains(prompt.String(), u) || strings.Contains(prompt.String(), "open it?") {
			t.Errorf("URL %q was offered: %q", u, prompt.String())
		}
	}
	var prompt bytes.Buffer
	a := &answerer{prompt: &prompt, lines: newLineReader(strings.NewReader("y\n"))}
	u := "https://auth.example.com/consent"
	res, err := a.elicit(context.Background(), &mcp.ElicitRequest{Params: &mcp.ElicitParams{Mode: "url", URL: u, Message: "sign in\x1b]52;c;ZXZpbA==\x07", ElicitationID: "1"}})
	if err != nil || res.Action != "accept" {
		t.Errorf("https URL: %v, %v; want accept", res, err)
	}
	if out := prompt.String(); !strings.Contains(out, u) || hasControl(out) {
		t.Errorf("https URL prompt %q: want the URL, without control characters", out)
	}
}

// Text a server sends (elicitation message, field titles and descriptions,
// sampling messages) reaches the terminal without control characters, so
// no escape sequence can rewrite the screen or set the clipboard.
func TestServerTextPrintedWithoutControls(t *testing.T) {
	url := askingServer(t)
	const evil = "\x1b[2J\x1b]52;c;ZXZpbA==\x07\u009b31m"
	args, _ := json.Marshal(map[string]any{
		"message": "Who" + evil + " are you?",
		"schema": map[string]any{"type": "object", "properties": map[string]any{
			"name": map[string]any{"type": "string", "title": "Name" + evil, "description": "your" + evil + " name", "default": "Ada"}}},
	})
	asPerson(t, "\n")
	r := runCLI(t, "call", "--url", url, "ask", string(args))
	if got := toolText(t, r); got["action"] != "accept" {
		t.Errorf("elicitation: got %v", got)
	}
	if !strings.Contains(r.stderr, "Who[2J]52;c;ZXZpbA==31m are you?") || !strings.Contains(r.stderr, "your[2J]52;c;ZXZpbA==31m name") {
		t.Errorf("the prompt %q does not show the server's text", r.stderr)
	}
	if hasControl(r.stderr) {
		t.Errorf("the prompt %q holds control characters", r.stderr)
	}

	args, _ = json.Marshal(map[string]string{"text": "Say" + evil + " hi", "system": "be" + evil + " nice"})
	asPerson(t, "hello\n")
	r = runCLI(t, "call", "--url", url, "sample", string(args))
	if got := toolText(t, r); got["reply"] != "hello" {
		t.Errorf("sampling: got %v", got)
	}
	if !strings.Contains(r.stderr, "[user] Say[2J]52;c;ZXZpbA==31m hi") || !strings.Contains(r.stderr, "[system] be[2J") {
		t.Errorf("the prompt %q does not show the server's text", r.stderr)
	}
	if hasControl(r.stderr) {
		t.Errorf("the sampling prompt %q holds control characters", r.stderr)
	}
}

// An error's message may carry a server's words (a JSON-RPC error, an
// HTTP body); the line report prints has no control characters.
func TestReportStripsControls(t *testing.T) {
	var out bytes.Buffer
	report(&out, "call", errors.New("tool failed: \x1b[2J\x1b]52;c;ZXZpbA==\x07gone"))
	if got := out.String(); got != "mcpool: tool failed: [2J]52;c;ZXZpbA==gone\n" {
		t.Errorf("report printed %q", got)
	}
}

// The browser is started for https URLs only, whoever asks (URL mode
// elicitation, the OAuth authorization URL).
func TestOpenBrowserOnlyBrowsable(t *testing.T) {
	t.Setenv("BROWSER", "true") // a "browser" that exits at once
	for _, u := range []string{"file:///etc/passwd", "vscode://evil/run", "javascript:alert(1)", "http://203.0.113.9/x"} {
		if openBrowser(u) {
			t.Errorf("openBrowser(%q) started the browser", u)
		}
	}
	if !openBrowser("https://auth.example.com/consent") {
		t.Error("openBrowser did not start the browser for an https URL")
	}
}
