package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolNames decodes tools output.
func toolNames(t *testing.T, r cliResult) []string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	var tools []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &tools); err != nil {
		t.Fatalf("stdout is not a JSON array of tools: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, tool := range tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

var demoTools = []string{"echo", "sleep", "structured"}

func TestToolsEmbedded(t *testing.T) {
	if got := toolNames(t, runCLI(t, "tools")); !slices.Equal(got, demoTools) {
		t.Errorf("tools %v, want %v", got, demoTools)
	}
}

func TestToolsStdio(t *testing.T) {
	if got := toolNames(t, runCLI(t, "tools", "--stdio", selfStdio(t))); !slices.Equal(got, demoTools) {
		t.Errorf("tools %v, want %v", got, demoTools)
	}
	wantNoChildren(t)
}

func TestToolsSSE(t *testing.T) {
	// SSEClientTransport reads its event stream on the connect context: the
	// pool must keep that context alive for the session's life.
	srv := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer ts.Close()
	if got := toolNames(t, runCLI(t, "tools", "--sse", ts.URL)); !slices.Equal(got, demoTools) {
		t.Errorf("tools %v, want %v", got, demoTools)
	}
}

// callResult decodes call output.
type callResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent map[string]any `json:"structuredContent"`
	IsError           bool           `json:"isError"`
}

func decodeCall(t *testing.T, r cliResult) callResult {
	t.Helper()
	var res callResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not a CallToolResult: %v\n%s", err, r.stdout)
	}
	return res
}

func TestCallEcho(t *testing.T) {
	// Flags may follow the positional arguments.
	r := runCLI(t, "call", "echo", `{"message":"x"}`, "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	res := decodeCall(t, r)
	if len(res.Content) != 1 || res.Content[0].Type != "text" || res.Content[0].Text != "x" {
		t.Errorf("result %+v, want one text content \"x\"", res)
	}
}

func TestCallStructured(t *testing.T) {
	r := runCLI(t, "call", "structured", `{"message":"abc"}`)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	if got := decodeCall(t, r).StructuredContent; got["message"] != "abc" || got["length"] != 3.0 {
		t.Errorf("structuredContent %v, want message abc and length 3", got)
	}
}

func TestCallToolError(t *testing.T) {
	// A message that is not a string fails the tool's input schema: the
	// server answers with isError, which call prints and exits 1 on.
	r := runCLI(t, "call", "echo", `{"message":5}`)
	if r.code != 1 {
		t.Fatalf("exit status %d, want 1: %s", r.code, r.stderr)
	}
	if !decodeCall(t, r).IsError {
		t.Errorf("printed result is not an error:\n%s", r.stdout)
	}
	wantOneLineError(t, cliResult{r.code, "", r.stderr}, 1, "reported an error")
}

// call sends its arguments' numbers as typed: an id past 2^53 and a
// long decimal reach the server digit for digit.
func TestCallArgumentsKeepNumbers(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "raw", Version: "1"}, nil)
	got := make(chan string, 1)
	srv.AddTool(&mcp.Tool{Name: "raw", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			got <- string(req.Params.Arguments)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer ts.Close()
	r := runCLI(t, "call", "--url", ts.URL, "raw", `{"id": 9007199254740993, "x": 0.1000000000000000055511151231257827}`)
	if r.code != 0 {
		t.Fatalf("exit status %d: %s", r.code, r.stderr)
	}
	var args map[string]json.RawMessage
	if err := json.Unmarshal([]byte(<-got), &args); err != nil {
		t.Fatal(err)
	}
	if string(args["id"]) != "9007199254740993" || string(args["x"]) != "0.1000000000000000055511151231257827" {
		t.Errorf("the server got id %s and x %s; want them as typed", args["id"], args["x"])
	}
	wantOneLineError(t, runCLI(t, "call", "raw", `{"a":1} {"b":2}`), exitUsage, "more after the object")
}
