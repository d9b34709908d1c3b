package redact

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every kind of secret is hidden wherever it shows, longest first, and
// short values are left alone.
func TestRedactor(t *testing.T) {
	var r Redactor
	r.AddHeader(http.Header{"Authorization": {"Bearer tok-123456"}, "X-Key": {"hdr-secret"}, "X-Short": {"ab"}})
	r.AddEnv([]string{"API_KEY=env-secret", "EMPTY="})
	r.AddURL("http://u:p%40ss-word@h/x?key=v4lue-s3cret&short=ab")
	r.Add("client-secret-1")
	in := `Post "http://u:p%40ss-word@h/x?key=v4lue-s3cret&short=ab": Bearer tok-123456 tok-123456 hdr-secret env-secret client-secret-1 ab`
	want := `Post "http://u:***@h/x?key=***&short=ab": *** *** *** *** *** ab`
	if got := r.String(in); got != want {
		t.Errorf("String:\n got %q\nwant %q", got, want)
	}
	base := errors.New("dial " + "env-secret")
	err := r.Err(base)
	if err.Error() != "dial ***" || !errors.Is(err, base) {
		t.Errorf("Err: %v (is base: %v)", err, errors.Is(err, base))
	}
	var buf bytes.Buffer
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil))).With("k", "hdr-secret")
	log.Info("msg env-secret", "err", base, "g", slog.Group("x", "y", "tok-123456"))
	if s := buf.String(); strings.Contains(s, "secret") && strings.Contains(s, "env-secret") || strings.Contains(s, "tok-123456") || strings.Contains(s, "hdr-secret") {
		t.Errorf("log line shows a secret: %s", s)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || nilR.Handler(slog.NewTextHandler(io.Discard, nil)) == nil {
		t.Error("a nil Redactor must pass things through")
	}
}
