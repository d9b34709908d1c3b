// Package errmsg holds how mcpool's error messages say "mcpool: " once:
// the library's errors start with it, and an error that wraps another
// would repeat it mid-message.
package errmsg

import "strings"

// Prefix starts the library's error messages.
const Prefix = "mcpool: "

// Unprefixed returns msg without Prefix where a wrapped message begins:
// at the start, after ": ", "; ", "(" or a line break. Elsewhere it is
// part of the text (a path such as "/usr/bin/mcpool: no such file", a
// quoted tool name) and stays.
func Unprefixed(msg string) string {
	if !strings.Contains(msg, Prefix) {
		return msg
	}
	var b strings.Builder
	b.Grow(len(msg))
	for {
		i := strings.Index(msg, Prefix)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		if !atStart(b.String()) {
			b.WriteString(Prefix)
		}
		msg = msg[i+len(Prefix):]
	}
}

// atStart reports whether a message that continues after done begins
// a wrapped message there.
func atStart(done string) bool {
	return done == "" || strings.HasSuffix(done, ": ") || strings.HasSuffix(done, "; ") ||
		strings.HasSuffix(done, "(") || strings.HasSuffix(done, "\n")
}
