package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkSDKDecode measures what the go-sdk (v1.8.0) spends to decode one
// small tools/call response, the part of a relayed call the gateway cannot
// avoid while its upstream calls go through mcp.ClientSession: every
// internal decode starts a streaming decoder with a 32 KiB buffer, whatever
// the message's size. "stdlib" decodes the same bytes with encoding/json
// for scale.
func BenchmarkSDKDecode(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}`)
	result := []byte(`{"content":[{"type":"text","text":"hi"}]}`)
	b.Run("jsonrpc.DecodeMessage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonrpc.DecodeMessage(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CallToolResult.UnmarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r mcp.CallToolResult
			if err := r.UnmarshalJSON(result); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r struct {
				ID     json.RawMessage `json:"id"`
				Result struct {
					Content []struct {
						Type string `json:"type"`
						Text string `json:"text"`
					} `json:"content"`
				} `json:"result"`
			}
			if err := json.Unmarshal(msg, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSDKListTools measures what a go-sdk (v1.8.0) client spends on
// one tools/list, by the number of tools listed: ClientSession.ListTools
// checks each tool's x-mcp-header annotations (filterValidTools), which
// encodes the tool's input schema again and decodes it with a fresh
// streaming decoder (a 32 KiB buffer), for every tool, on every list, in
// every protocol version. A client that opens a session per call pays it
// on each session. The server and the client run in process over the
// SDK's in-memory transport.
func BenchmarkSDKListTools(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("tools=%d", n), func(b *testing.B) {
			s := mcp.NewServer(&mcp.Implementation{Name: "many", Version: "1"}, nil)
			for i := range n {
				mcp.AddTool(s, &mcp.Tool{Name: fmt.Sprintf("tool%d", i), Description: "reads a file"},
					func(context.Context, *mcp.CallToolRequest, struct {
						Path string `json:"path" jsonschema:"the file's path"`
						Head int    `json:"head,omitempty" jsonschema:"the first lines only"`
					}) (*mcp.CallToolResult, any, error) {
						return &mcp.CallToolResult{}, nil, nil
					})
			}
			ct, st := mcp.NewInMemoryTransports()
			ctx := context.Background()
			ss, err := s.Connect(ctx, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ss.Close()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cs.ListTools(ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
