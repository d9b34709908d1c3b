package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The marker counts a call's log messages only when the call has a
// downstream session (relayLog relays nothing else, and the call's result
// waits until what was counted is relayed), and leaves lines that cannot
// be requests or notifications untouched.
func TestSSEMarkerCounts(t *testing.T) {
	ss := &mcp.ServerSession{}
	for _, c := range []struct {
		name string
		ss   *mcp.ServerSession
		want int64
	}{{"with a session", ss, 1}, {"stateless", nil, 0}} {
		t.Run(c.name, func(t *testing.T) {
			cl := &caller{token: "t-" + c.name, ctx: context.Background(), ss: c.ss, wake: make(chan struct{}, 1)}
			callers.Store(cl.token, cl)
			defer callers.Delete(cl.token)
			m := &sseMarker{token: cl.token}
			log := []byte(`data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}` + "\n")
			out := m.mark(log)
			var msg struct {
				Params struct {
					Meta map[string]string `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(out), []byte("data: ")), &msg); err != nil || msg.Params.Meta[callerMetaKey] != cl.token {
				t.Errorf("marked line %s (%v): want the caller's token", out, err)
			}
			if got := cl.seen.Load(); got != c.want {
				t.Errorf("seen %d, want %d", got, c.want)
			}
			resp := []byte(`data: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}` + "\n")
			if out := m.mark(resp); !bytes.Equal(out, resp) {
				t.Errorf("a response was rewritten: %s", out)
			}
		})
	}
}
