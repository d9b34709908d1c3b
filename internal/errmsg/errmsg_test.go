package errmsg

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUnprefixed(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mcpool: connect to x failed: mcpool: no session", "connect to x failed: no session"},
		{`server "a": mcpool: unavailable (mcpool: breaker open); mcpool: again`, `server "a": unavailable (breaker open); again`},
		{"one\nmcpool: two", "one\ntwo"},
		{"fork/exec /opt/bin/mcpool: no such file or directory", "fork/exec /opt/bin/mcpool: no such file or directory"},
		{`unknown tool "mcpool: hello"`, `unknown tool "mcpool: hello"`},
		{"mcpool: mcpool: twice", "twice"},
		{"nothing to do", "nothing to do"},
	} {
		if got := Unprefixed(tc.in); got != tc.want {
			t.Errorf("Unprefixed(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
