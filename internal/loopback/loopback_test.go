package loopback

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3:80": true, "[::1]:7300": true, "::1": true, "localhost": true,
		"LocalHost:9": true, "[::1]": true,
		"10.0.0.1": false, "0.0.0.0:7300": false, "[::]:80": false, "example.com": false, "": false,
		"localhost.example.com": false, "127.0.0.1.nip.io": false,
	} {
		if got := Addr(addr); got != want {
			t.Errorf("Addr(%q) = %v; want %v", addr, got, want)
		}
	}
}
