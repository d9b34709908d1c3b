package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// decodeByLevels is the relay's former reader: encoding/json, one pass per
// level. decodeRequest must accept nothing it refused and read the same
// fields from whatever it accepts.
func decodeByLevels(body []byte, m *relayWire, p *relayParams) bool {
	var top, params map[string]json.RawMessage
	if !isObject(body) || json.Unmarshal(body, &top) != nil {
		return false
	}
	for k, v := range top {
		switch k {
		case "jsonrpc":
			if json.Unmarshal(v, &m.JSONRPC) != nil {
				return false
			}
		case "id":
			m.ID = v
		case "method":
			if json.Unmarshal(v, &m.Method) != nil {
				return false
			}
		case "params":
			m.Params = v
		default:
			return false
		}
	}
	if !isObject(m.Params) || json.Unmarshal(m.Params, &params) != nil {
		return false
	}
	for k, v := range params {
		var err error
		switch k {
		case "name":
			err = json.Unmarshal(v, &p.Name)
		case "arguments":
			p.Arguments = v
		case "_meta":
			if !isObject(v) {
				return false
			}
			err = json.Unmarshal(v, &p.Meta)
		case "requestId":
			p.RequestID = v
		case "reason":
			err = json.Unmarshal(v, &p.Reason)
		default:
			return false
		}
		if err != nil {
			return false
		}
	}
	return true
}

var decodeCases = []struct {
	body string
	ok   bool // decodeRequest accepts it
}{
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s__echo","arguments":{"text":"hi"}}}`, true},
	{" \n{ \"jsonrpc\" : \"2.0\" , \"id\" : \"a-1\", \"method\":\"tools/call\",\n\"params\" :\t{ \"name\" : \"x\" } } \n", true},
	{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a\u00e9\"b","arguments":null,"_meta":{"progressToken":3,"x":{"y":[1,2]}}}}`, true},
	{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"q","reason":"gone"}}`, true},
	{`{"jsonrpc":null,"id":null,"method":"tools/call","params":{"name":null}}`, true},
	{`{"params":{},"method":"tools/call","id":[1],"jsonrpc":"2.0"}`, true},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":[1,{"a":"\ud83d\ude00"}]}}`, true},
	// Refused by both.
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","extra":1}}`, false},
	{`{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"s"}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"s"}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}`, false},
	{`{"jsonrpc":2,"id":1,"method":"tools/call","params":{}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":null}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":[]}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s"}} {}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s"}`, false},
	{`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}]`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"a":}}}`, false},
	{``, false},
	{`null`, false},
	// Refused here, accepted by encoding/json: the SDK's handler decides.
	{`{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"s"}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, false},
	{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s"},"params":{"name":"t"}}`, false},
	{`{"jsonrpc":"2.0","id":1,"\u006dethod":"tools/call","params":{"name":"s"}}`, false},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"s\xff\"}}", false},
}

func TestDecodeRequest(t *testing.T) {
	for _, c := range decodeCases {
		var m, rm relayWire
		var p, rp relayParams
		got, ref := decodeRequest([]byte(c.body), &m, &p), decodeByLevels([]byte(c.body), &rm, &rp)
		if got != c.ok {
			t.Errorf("decodeRequest(%s) = %v, want %v", c.body, got, c.ok)
			continue
		}
		if got && !ref {
			t.Errorf("decodeRequest(%s) accepts what encoding/json refuses", c.body)
		}
		if !got {
			continue
		}
		rm.Params, m.Params = compact(t, rm.Params), compact(t, m.Params)
		rm.ID, m.ID = compact(t, rm.ID), compact(t, m.ID)
		rp.Arguments, p.Arguments = compact(t, rp.Arguments), compact(t, p.Arguments)
		rp.RequestID, p.RequestID = compact(t, rp.RequestID), compact(t, p.RequestID)
		if !reflect.DeepEqual(m, rm) || !reflect.DeepEqual(p, rp) {
			t.Errorf("decodeRequest(%s):\n got %+v %+v\nwant %+v %+v", c.body, m, p, rm, rp)
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return b.Bytes()
}

func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"hello from the bench"}}}`)
	for _, f := range []struct {
		name string
		fn   func([]byte, *relayWire, *relayParams) bool
	}{{"jsontext", decodeRequest}, {"levels", decodeByLevels}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m relayWire
				var p relayParams
				if !f.fn(body, &m, &p) {
					b.Fatal("refused")
				}
			}
		})
	}
}
