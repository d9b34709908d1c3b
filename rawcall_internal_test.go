package mcpool

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// readEvents parses a call's event stream as the SDK's scanner does.
func TestRawReadEvents(t *testing.T) {
	const resp = `{"jsonrpc":"2.0","id":"mcpool-1","result":{"content":[]}}`
	for _, c := range []struct {
		name, stream string
		want         string // the result, or "" for none
		last         string // the last event id dispatched
		broken       bool
	}{
		{"plain", "event: message\ndata: " + resp + "\n\n", `{"content":[]}`, "", false},
		{"CRLF, comment, padded fields", ": hi\r\nevent:  message \r\nid: 7 \r\ndata:" + resp + "\r\n\r\n", `{"content":[]}`, "", false},
		{"last event without its blank line", "id: 3\ndata: " + resp, `{"content":[]}`, "", false},
		{"priming event, then the stream ends", "id: 5\ndata:\n\n: bye\n", "", "5", false},
		{"another event name", "event: other\ndata: " + resp + "\n\n", "", "", false},
		{"data over two lines", "data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":\"mcpool-1\",\"result\":{}}\n\n", `{}`, "", false},
		{"a line without a colon", "garbage\n\n", "", "", true},
		{"an event that is not JSON", "data: {\n\n", "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := &rawCaller{}
			r := &http.Response{Body: io.NopCloser(strings.NewReader(c.stream))}
			res, done, last, _, err := rc.readEvents(context.Background(), nil, r, `"mcpool-1"`, &serverAsks{})
			var rb *rawBroken
			if c.broken != errors.As(err, &rb) {
				t.Fatalf("error %v, want broken %v", err, c.broken)
			}
			if string(res) != c.want || done != (c.want != "") || last != c.last {
				t.Errorf("result %s done %v last %q; want %s, last %q", res, done, last, c.want, c.last)
			}
		})
	}
}

// What the pool posts on a call's behalf carries neither its end nor its
// tracker: a 400 or 429 to an answer is not the call's.
func TestUntracked(t *testing.T) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), trackKey{}, &callTrack{}))
	u := untracked(ctx)
	cancel()
	if trackOf(u) != nil || u.Err() != nil {
		t.Errorf("untracked: track %v, err %v; want none", trackOf(u), u.Err())
	}
}

// serve answers what the SDK's client answers: ping with an empty result,
// an unknown method with "method not found".
func TestRawServe(t *testing.T) {
	rc := &rawCaller{opts: &mcp.ClientOptions{}}
	if res, err := rc.serve(context.Background(), nil, &rawMessage{Method: "ping"}); err != nil || res == nil {
		t.Errorf("ping: %v, %v", res, err)
	}
	_, err := rc.serve(context.Background(), nil, &rawMessage{Method: "x/y"})
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != jsonrpc.CodeMethodNotFound || we.Message != `method not found: "x/y"` {
		t.Errorf("unknown method: %v", err)
	}
}
