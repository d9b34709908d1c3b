package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/gateway"
)

func TestLoadSettingsIsolatedCapAndSpares(t *testing.T) {
	write := func(body string) string {
		path := filepath.Join(t.TempDir(), "mcp.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fs, err := gateway.LoadSettings(write(`{"mcpServers": {}, "gateway": {"maxIsolatedSessions": 8, "servers": {"b": {"spares": -1}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if fs.MaxIsolatedSessions != 8 || fs.Servers["b"].Spares != -1 {
		t.Errorf("settings %+v: want maxIsolatedSessions 8 and spares -1 (none)", fs)
	}
	_, err = gateway.LoadSettings(write(`{"gateway": {"maxIsolatedSessions": -1}}`))
	if err == nil || !strings.Contains(err.Error(), "gateway.maxIsolatedSessions") {
		t.Errorf("negative maxIsolatedSessions: %v, want an error naming the field", err)
	}
}
