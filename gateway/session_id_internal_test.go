package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func testCodec(t testing.TB, keys ...string) *sessionCodec {
	t.Helper()
	var material [][]byte
	for _, k := range keys {
		material = append(material, []byte(k))
	}
	c, err := newSessionCodec(material, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	keyA = "0123456789abcdef-key-a"
	keyB = "0123456789abcdef-key-b"
)

func testState() *portableState {
	caps := &mcp.ClientCapabilities{} // as read from the wire
	caps.Roots.ListChanged = true
	return &portableState{
		Version: "2025-11-25",
		Caps:    caps,
		Info:    &mcp.Implementation{Name: "client", Version: "1.2.3"},
		Level:   "info",
	}
}

func TestSessionIDCarriesTheSessionState(t *testing.T) {
	c := testCodec(t, keyA)
	id, err := c.seal("cred:Bearer alice", testState())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			t.Fatalf("id has %q: session ids must be visible ASCII", r)
		}
	}
	cl, err := c.open(id)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !c.boundTo(&cl, "cred:Bearer alice") || c.boundTo(&cl, "cred:Bearer bob") || c.boundTo(&cl, "") {
		t.Fatal("the id is not bound to exactly its creator's identity")
	}
	if cl.expiry-cl.created != int64(time.Hour/time.Second) {
		t.Fatalf("expiry %d, created %d: want an hour apart", cl.expiry, cl.created)
	}
	st, _, err := cl.restore()
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocolVersion != "2025-11-25" || st.InitializeParams.ClientInfo.Version != "1.2.3" ||
		!st.InitializeParams.Capabilities.Roots.ListChanged || st.LogLevel != "info" || st.InitializedParams == nil {
		t.Fatalf("restored %+v", st)
	}
	// No identity: bound to callers without credentials only.
	id2, _ := c.seal("", testState())
	cl2, err := c.open(id2)
	if err != nil || !c.boundTo(&cl2, "") || c.boundTo(&cl2, "cred:Bearer alice") {
		t.Fatalf("unbound id: %v", err)
	}
	if id2 == id {
		t.Fatal("two sessions got one id")
	}
}

func TestSessionIDRefusesForgedTamperedExpiredAndForeign(t *testing.T) {
	c := testCodec(t, keyA)
	id, _ := c.seal("", testState())
	raw, _ := base64.RawURLEncoding.DecodeString(id)

	tampered := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := map[string]string{
		"empty":            "",
		"random":           "not-a-session-id",
		"not base64":       id[:len(id)-3] + "!!!",
		"truncated":        id[:40],
		"expiry tampered":  tampered(5),
		"identity changed": tampered(20),
		"state tampered":   tampered(len(raw) - 20),
		"mac tampered":     tampered(len(raw) - 1),
		"foreign key":      func() string { id, _ := testCodec(t, keyB).seal("", testState()); return id }(),
	}
	for name, bad := range cases {
		if _, err := c.open(bad); !errors.Is(err, errSessionInvalid) {
			t.Errorf("%s: open = %v, want errSessionInvalid", name, err)
		}
	}
	c.now = func() time.Time { return time.Now().Add(time.Hour + time.Second) }
	if _, err := c.open(id); !errors.Is(err, errSessionExpired) {
		t.Errorf("an hour later: open = %v, want errSessionExpired", err)
	}
}

func TestSessionKeysRotate(t *testing.T) {
	old := testCodec(t, keyA)
	id, _ := old.seal("cred:x", testState())
	rotated := testCodec(t, keyB, keyA) // new key first, old still accepted
	cl, err := rotated.open(id)
	if err != nil {
		t.Fatalf("an id signed with the old key: %v", err)
	}
	if !rotated.boundTo(&cl, "cred:x") {
		t.Fatal("identity not recognised under the old key")
	}
	newID, _ := rotated.seal("", testState())
	if _, err := old.open(newID); !errors.Is(err, errSessionInvalid) {
		t.Fatalf("a replica without the new key opened its id: %v", err)
	}
	if _, err := testCodec(t, keyB).open(newID); err != nil {
		t.Fatalf("signed with the first key: %v", err)
	}
	if _, err := newSessionCodec([][]byte{[]byte("short")}, 0); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// BenchmarkSessionID measures what a request pays for its session id on a
// replica that does not hold the session yet: opening the id (base64, the
// mac) and checking the caller's identity. A replica that holds it pays the
// identity check only. "isolated" ids also carry the upstream session of
// an isolated HTTP server (its id and InitializeResult, as a go-sdk server
// answers).
func BenchmarkSessionID(b *testing.B) {
	c := testCodec(b, keyA, keyB)
	iso := testState()
	iso.Up = map[string]*upstreamRef{"iso": {ID: "FWVZ2OMHIAKWD465DM5QZQYQX5",
		Result: json.RawMessage(`{"capabilities":{"logging":{},"tools":{"listChanged":true}},"protocolVersion":"2025-11-25","serverInfo":{"name":"counter","version":"1"}}`)}}
	for _, tc := range []struct {
		name string
		st   *portableState
	}{{"plain", testState()}, {"isolated", iso}} {
		id, _ := c.seal("cred:Bearer some-token-of-usual-length-0123456789", tc.st)
		b.Run(tc.name+"/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cl, err := c.open(id)
				if err != nil || !c.boundTo(&cl, "cred:Bearer some-token-of-usual-length-0123456789") {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.seal("cred:Bearer some-token-of-usual-length-0123456789", tc.st); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/restore", func(b *testing.B) {
			b.ReportAllocs()
			cl, _ := c.open(id)
			for b.Loop() {
				if _, _, err := cl.restore(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Logf("%s id length %d bytes", tc.name, len(id))
	}
}

// The isolated upstream sessions an id carries are encrypted: the id does
// not show the upstream's session id, and every accepted key restores them.
func TestSessionIDHidesUpstreamSessions(t *testing.T) {
	st := testState()
	st.Up = map[string]*upstreamRef{"iso": {ID: "UPSTREAM-SESSION-ID-123", Result: json.RawMessage(`{"protocolVersion":"2025-11-25"}`)}}
	id, err := testCodec(t, keyA).seal("", st)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	if strings.Contains(string(raw), "UPSTREAM-SESSION-ID-123") {
		t.Fatalf("the id shows the upstream session id: %q", raw)
	}
	cl, err := testCodec(t, keyB, keyA).open(id) // rotated: the old key still opens it
	if err != nil {
		t.Fatal(err)
	}
	_, up, err := cl.restore()
	if err != nil || up["iso"] == nil || up["iso"].ID != "UPSTREAM-SESSION-ID-123" || up["iso"].version() != "2025-11-25" {
		t.Fatalf("restored %v, %v", up, err)
	}
}
