package main

import (
	"net"
	"net/url"
	"strings"
)

// browsable reports whether a URL a server sent (URL mode elicitation,
// the OAuth authorization endpoint) may be offered to the person and
// opened in a browser: https, or http to this machine (localhost or a
// loopback address), with a host and no user info. Any other scheme
// (file:, javascript:, a desktop's custom handlers, reached on Windows
// through rundll32) could run something local rather than show a page, and
// user info ("https://bank.example@evil.example") misleads the reader.
// The MCP spec (2025-11-25, "URL Mode Elicitation") asks clients not to
// open URLs they have not checked.
func browsable(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		if strings.EqualFold(host, "localhost") {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// printable strips from text a server sent the characters a terminal
// would act on rather than show: C0 controls other than newline and tab
// (ESC starts ANSI sequences that move the cursor, rewrite the screen or
// set the clipboard), DEL, and the C1 controls U+0080 to U+009F (U+009B is
// a one-character CSI). Invalid UTF-8 becomes U+FFFD, so a raw 0x9B byte
// cannot reach a terminal in an 8-bit mode either.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
			return -1
		}
		return r
	}, s)
}
