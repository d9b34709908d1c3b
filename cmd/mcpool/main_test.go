package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/mcpool/mcpool/internal/proctest"
	"go.uber.org/goleak"
)

// stdioEnv makes the test binary act as "mcpool demo-server --stdio", so
// --stdio tests start a real child process without building anything.
const stdioEnv = "MCPOOL_CLI_TEST_STDIO"

func TestMain(m *testing.M) {
	if os.Getenv(stdioEnv) == "1" {
		os.Exit(run([]string{"demo-server", "--stdio"}, os.Stdout, os.Stderr))
	}
	if addr := os.Getenv(httpEnv); addr != "" { // config_test.go
		os.Exit(run([]string{"demo-server", "--http", addr}, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// cliResult is what one run of the command produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command in process, as main does.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// wantOneLineError checks a failed run: the status, nothing on stdout and
// exactly one "mcpool: " line on stderr.
func wantOneLineError(t *testing.T, r cliResult, code int, mention string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(r.stderr, "mcpool: ") {
		t.Errorf("stderr %q, want one line starting with \"mcpool: \"", r.stderr)
	}
	if !strings.Contains(r.stderr, mention) {
		t.Errorf("stderr %q does not mention %q", r.stderr, mention)
	}
}

// selfStdio returns a --stdio value that starts this test binary as a demo
// stdio server. The path is quoted: the shell-words split must keep it whole.
func selfStdio(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(stdioEnv, "1")
	// A race-enabled binary sleeps a second at exit by default; children
	// started per call would make the tests crawl.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return "'" + strings.ReplaceAll(exe, "'", `'\''`) + "'"
}

// children returns the ids of this process's children, running or not yet
// reaped (zombies), from /proc.
func children(t *testing.T) []int {
	t.Helper()
	kids, err := proctest.Children("")
	if err != nil {
		t.Fatal(err)
	}
	return kids
}

func wantNoChildren(t *testing.T) {
	t.Helper()
	if kids := children(t); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}
