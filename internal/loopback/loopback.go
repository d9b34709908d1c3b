// Package loopback says whether a host or address is this machine's own:
// the one rule behind the gateway's DNS rebinding check, its default
// listen and audience, and the http URLs allowed for an authorization
// server (loopback only, in tests).
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host (a name or an IP address, without port; IPv6
// in brackets or not) is "localhost" or a loopback address (127.0.0.0/8,
// ::1).
func Host(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is Host for an address that may carry a port ("127.0.0.1:7300",
// "[::1]:80", "localhost").
func Addr(addr string) bool {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return Host(addr)
}
