package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/proctest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

// stdioEnv makes the test binary act as "mcpool demo-server --stdio", so
// --stdio tests start a real child process without building anything.
const stdioEnv = "MCPOOL_CLI_TEST_STDIO"

// runEnv makes the test binary act as the command itself, with its
// arguments: tests that send signals or time the exit run the real thing
// (see execCLI).
const runEnv = "MCPOOL_CLI_TEST_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(runEnv) == "1" {
		// Children it starts (--stdio) are servers, not commands.
		os.Unsetenv(runEnv)
		exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	switch os.Getenv(stdioEnv) {
	case "1":
		os.Exit(run([]string{"demo-server", "--stdio"}, os.Stdout, os.Stderr))
	case slowExit:
		// A stdio server that serves normally, then keeps running after
		// its input ends, as some servers do under load: the client's
		// close must wait out its grace and send SIGTERM (which, not
		// handled here, ends the process).
		if f := os.Getenv(pidFileEnv); f != "" {
			_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600)
		}
		_ = demoserver.New(demoserver.Options{}).Run(context.Background(), &mcp.StdioTransport{})
		time.Sleep(time.Minute)
		os.Exit(0)
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
	return selfStdioMode(t, "1")
}

// slowExit is the stdio mode of a server slow to exit (see TestMain).
const slowExit = "slow-exit"

// pidFileEnv names a file where a slow-exit server writes its process id.
const pidFileEnv = "MCPOOL_CLI_TEST_PIDFILE"

// selfStdioMode is selfStdio for one of TestMain's stdio modes.
func selfStdioMode(t *testing.T, mode string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(stdioEnv, mode)
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
