package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool/oauth"
)

func TestAuditorOneLinePerCall(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	a := oauth.NewAuditor(&buf)
	id := oauth.Identity{Subject: "alice", ClientID: "app", Token: "secret-token-value"}
	done := a.Start(id, "github", oauth.KindTool, "create_issue")
	done(context.Background(), oauth.OutcomeOK, 812)
	a.Record(context.Background(), oauth.Call{Time: time.Unix(1700000000, 0), Subject: "bob", Server: "files",
		Kind: oauth.KindResource, Name: "file:///a", Outcome: oauth.OutcomeRateLimited, Duration: 1500 * time.Microsecond})
	var nilAuditor *oauth.Auditor
	nilAuditor.Record(context.Background(), oauth.Call{}) // no-op

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "secret-token-value") {
		t.Error("token in the audit log")
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"msg": "call", "subject": "alice", "client_id": "app", "server": "github",
		"kind": "tool", "name": "create_issue", "outcome": "ok", "bytes": 812.0} {
		if first[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, first[k], v, lines[0])
		}
	}
	if _, ok := first["duration_ms"].(float64); !ok {
		t.Errorf("no duration_ms: %s", lines[0])
	}
	if _, ok := first["level"]; ok {
		t.Errorf("level in an audit line: %s", lines[0])
	}
	if second["time"] != time.Unix(1700000000, 0).Format(time.RFC3339Nano) && !strings.HasPrefix(second["time"].(string), "2023-11-14T") {
		t.Errorf("time %v", second["time"])
	}
	if second["duration_ms"] != 1.5 || second["outcome"] != "rate_limited" || second["kind"] != "resource" {
		t.Errorf("%s", lines[1])
	}
}
