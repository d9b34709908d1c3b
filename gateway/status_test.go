package gateway

import (
	"errors"
	"fmt"
	"testing"
)

// A server that is down fails its three lists with the same error: the
// status shows it once.
func TestErrorTextOnce(t *testing.T) {
	refused := errors.New(`connect to http://127.0.0.1:1/mcp: connection refused`)
	other := errors.New("tools/list: timed out")
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{refused, refused.Error()},
		{errors.Join(refused, refused, refused), refused.Error()},
		{errors.Join(refused, nil, errors.New(refused.Error())), refused.Error()},
		{errors.Join(refused, other, refused), refused.Error() + "; " + other.Error()},
		{errors.Join(errors.Join(refused, other), refused), refused.Error() + "; " + other.Error()},
		// Counts and durations differ from one list to the next.
		{errors.Join(errors.New("unavailable after 45 failed connects (next try in 23ms): refused"), errors.New("unavailable after 46 failed connects (next try in 1.5s): refused")),
			"unavailable after 45 failed connects (next try in 23ms): refused"},
		{errors.Join(errors.New("port 80 refused"), errors.New("port 80: no route")), "port 80 refused; port 80: no route"},
		// Not a plain join: the words around the errors stay.
		{fmt.Errorf("both failed: %w and %w", refused, refused), "both failed: " + refused.Error() + " and " + refused.Error()},
	} {
		if got := errorText(c.err); got != c.want {
			t.Errorf("errorText(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}
