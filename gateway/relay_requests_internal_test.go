package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
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

// A stream read through the marker in small reads comes out whole, with
// every request and notification marked, including one longer than the
// marker's buffer.
func TestSSEMarkerStream(t *testing.T) {
	long := strings.Repeat("y", 10000)
	in := "event: message\n" +
		`data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + long + `"}}` + "\n\n" +
		": a comment\n" +
		`data: {"jsonrpc":"2.0","id":"mcpool-1","method":"roots/list"}` + "\n\n" +
		`data: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}` + "\n\n"
	for round := range 3 { // the buffers come back from the pool
		m := &sseMarker{rc: io.NopCloser(strings.NewReader(in)), token: "tok", br: markerReaders.Get().(*bufio.Reader)}
		m.br.Reset(m.rc)
		var out bytes.Buffer
		p := make([]byte, 7)
		for {
			n, err := m.Read(p)
			out.Write(p[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		var marked []string
		for line := range strings.Lines(out.String()) {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var msg struct {
				Method string `json:"method"`
				Params struct {
					Data string         `json:"data"`
					Meta map[string]any `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal([]byte(data), &msg); err != nil {
				t.Fatalf("round %d: %v in %.80q", round, err, data)
			}
			if msg.Params.Meta[callerMetaKey] == "tok" {
				marked = append(marked, msg.Method)
			}
			if msg.Method == "notifications/message" && msg.Params.Data != long {
				t.Errorf("round %d: the long message came out %d bytes long", round, len(msg.Params.Data))
			}
		}
		if want := []string{"notifications/message", "roots/list"}; !slices.Equal(marked, want) {
			t.Errorf("round %d: marked %q, want %q", round, marked, want)
		}
		if !strings.Contains(out.String(), ": a comment\n") || !strings.HasSuffix(out.String(), `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`+"\n\n") {
			t.Errorf("round %d: other lines changed:\n%s", round, out.String())
		}
		if m.br != nil {
			t.Errorf("round %d: the buffer was not given back at EOF", round)
		}
	}
}
