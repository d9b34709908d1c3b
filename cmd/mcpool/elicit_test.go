package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// askingServer is a go-sdk server over loopback HTTP whose tools ask the
// client things during the call: "ask" elicits with the schema it is
// given, "sample" asks for a model's reply, "caps" returns the client's
// declared capabilities. Each answers with what the client said, as JSON.
func askingServer(t *testing.T) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "asking", Version: "1"},
		// Server-initiated requests need a session: the 2025-11-25 protocol.
		&mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	text := func(v any) *mcp.CallToolResult {
		b, _ := json.Marshal(v)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Schema  map[string]any `json:"schema"`
		Message string         `json:"message,omitempty"`
	}) (*mcp.CallToolResult, any, error) {
		if in.Message == "" {
			in.Message = "Who are you?"
		}
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: in.Message, RequestedSchema: in.Schema})
		if err != nil {
			return nil, nil, err
		}
		return text(map[string]any{"action": res.Action, "content": res.Content}), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Text   string `json:"text,omitempty"`
		System string `json:"system,omitempty"`
	}) (*mcp.CallToolResult, any, error) {
		if in.Text == "" {
			in.Text = "Say hi"
		}
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, SystemPrompt: in.System,
			Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Text}}}})
		if err != nil {
			return nil, nil, err
		}
		return text(map[string]any{"model": res.Model, "reply": res.Content.(*mcp.TextContent).Text}), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "caps"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		c := req.ClientCapabilities()
		return text(map[string]bool{"elicitation": c != nil && c.Elicitation != nil, "sampling": c != nil && c.Sampling != nil}), nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}

// toolText returns the text the tool answered, from call's JSON output.
func toolText(t *testing.T, r cliResult) map[string]any {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("call: status %d, stderr %q", r.code, r.stderr)
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("call output %q: %v", r.stdout, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(res.Content[0].Text), &m); err != nil {
		t.Fatalf("tool text %q: %v", res.Content[0].Text, err)
	}
	return m
}

// asPerson makes the command see a person at a terminal typing input.
func asPerson(t *testing.T, input string) {
	t.Helper()
	oldIn, oldInteractive := answerInput, interactive
	answerInput, interactive = strings.NewReader(input), func() bool { return true }
	t.Cleanup(func() { answerInput, interactive = oldIn, oldInteractive })
}

const nameSchema = `{"schema":{"type":"object","required":["name"],"properties":{
	"name":{"type":"string","default":"Ada"},
	"age":{"type":"integer","minimum":0,"default":36},
	"lang":{"type":"string","enum":["go","rust"]}}}}`

func TestElicitationWithoutPerson(t *testing.T) {
	url := askingServer(t)
	// Defaults fill the only required field: accepted with every default.
	got := toolText(t, runCLI(t, "call", "--url", url, "--no-input", "ask", nameSchema))
	content, _ := got["content"].(map[string]any)
	if got["action"] != "accept" || content["name"] != "Ada" || content["age"] != 36.0 || content["lang"] != nil {
		t.Errorf("no input, defaults fill the form: got %v, want accept {name: Ada, age: 36}", got)
	}
	// A required field without a default: declined.
	noDefault := `{"schema":{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}}`
	got = toolText(t, runCLI(t, "call", "--url", url, "--no-input", "ask", noDefault))
	if got["action"] != "decline" {
		t.Errorf("no input, required field without default: got %v, want decline", got)
	}
	// --no-input wins over a terminal; sampling is then not declared.
	asPerson(t, "")
	got = toolText(t, runCLI(t, "call", "--url", url, "--no-input", "caps"))
	if got["elicitation"] != true || got["sampling"] != false {
		t.Errorf("capabilities with --no-input: %v, want elicitation only", got)
	}
}

func TestElicitationPrompts(t *testing.T) {
	url := askingServer(t)
	// Required first (name: typed), then age (invalid twice, then valid),
	// then lang (not in the enum, then valid).
	asPerson(t, "Grace\nold\n-3\n85\nc++\nrust\n")
	r := runCLI(t, "call", "--url", url, "ask", nameSchema)
	got := toolText(t, r)
	content, _ := got["content"].(map[string]any)
	if got["action"] != "accept" || content["name"] != "Grace" || content["age"] != 85.0 || content["lang"] != "rust" {
		t.Errorf("typed answers: got %v, want accept {name: Grace, age: 85, lang: rust}", got)
	}
	for _, want := range []string{"Who are you?", "name [string, default \"Ada\"]", "not an integer", "try again"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("prompts %q do not mention %q", r.stderr, want)
		}
	}

	// Enter keeps defaults; an optional field without one is left out.
	asPerson(t, "\n\n\n")
	got = toolText(t, runCLI(t, "call", "--url", url, "ask", nameSchema))
	content, _ = got["content"].(map[string]any)
	if got["action"] != "accept" || content["name"] != "Ada" || content["age"] != 36.0 || content["lang"] != nil {
		t.Errorf("Enter on every field: got %v, want the defaults", got)
	}

	asPerson(t, ":decline\n")
	if got = toolText(t, runCLI(t, "call", "--url", url, "ask", nameSchema)); got["action"] != "decline" {
		t.Errorf(":decline: got %v", got)
	}
	// The input ends (Ctrl-D): cancelled.
	asPerson(t, "")
	if got = toolText(t, runCLI(t, "call", "--url", url, "ask", nameSchema)); got["action"] != "cancel" {
		t.Errorf("end of input: got %v, want cancel", got)
	}
}

func TestSamplingByPerson(t *testing.T) {
	url := askingServer(t)
	asPerson(t, "hello there\n")
	r := runCLI(t, "call", "--url", url, "sample")
	got := toolText(t, r)
	if got["reply"] != "hello there" || got["model"] != "human" {
		t.Errorf("sampling: got %v", got)
	}
	if !strings.Contains(r.stderr, "[user] Say hi") {
		t.Errorf("the prompt %q does not show the server's message", r.stderr)
	}
	// Without a person, sampling is not declared, and the server says so.
	r = runCLI(t, "call", "--url", url, "--no-input", "sample")
	if r.code != 1 || !strings.Contains(r.stdout, "sampling") {
		t.Errorf("sampling without a person: status %d, stdout %q; want 1 and the server's refusal", r.code, r.stdout)
	}
}
