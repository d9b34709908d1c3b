package gateway_test

import (
	"encoding/json"
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
