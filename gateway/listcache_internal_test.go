package gateway

import (
	"bytes"
	"net/http"
	"testing"
)

// The cache stays within listCacheBytes, counting headers and overhead, by
// dropping older entries, and keeps the newest answer.
func TestListCacheBound(t *testing.T) {
	var c listCache
	result := append(append([]byte(`{"tools":[],"x":"`), bytes.Repeat([]byte("a"), 900<<10)...), `"}`...)
	var last [32]byte
	for i := range 10 {
		last = [32]byte{byte(i)}
		c.put(last, &listAnswer{header: http.Header{"Content-Type": {"application/json"}}, result: result})
		total := 0
		for _, a := range c.entries {
			total += a.size()
		}
		if total != c.size || c.size > listCacheBytes {
			t.Fatalf("after %d answers: %d bytes counted, %d held; want equal and at most %d", i+1, c.size, total, listCacheBytes)
		}
	}
	if c.get(last, 0) == nil {
		t.Error("the newest answer was dropped")
	}
	c.invalidate()
	if c.get(last, c.gen.Load()) != nil || c.size != 0 {
		t.Error("an answer survived invalidate")
	}
}

// Only the headers the SDK or the gateway read are part of the key.
func TestListKeyHeaders(t *testing.T) {
	m := &listWire{Method: "tools/list", Params: []byte(`{}`)}
	key := func(h http.Header) [32]byte {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
		r.Header = h
		return listKey(r, m)
	}
	base := http.Header{"Authorization": {"Bearer a"}, "Mcp-Protocol-Version": {"2026-07-28"}}
	same := base.Clone()
	same.Set("X-Request-Id", "123")
	same.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if key(base) != key(same) {
		t.Error("a proxy's per-request headers split the key")
	}
	for name, v := range map[string]string{"Authorization": "Bearer b", "Origin": "http://evil.example", "Mcp-Method": "tools/list", "Sec-Fetch-Site": "cross-site", "Accept": "application/json"} {
		other := base.Clone()
		other.Set(name, v)
		if key(base) == key(other) {
			t.Errorf("%s does not change the key", name)
		}
	}
}
