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
	"github.com/mcpool/mcpool/internal/stdio"
	"go.uber.org/goleak"
)

// runEnv makes the test binary act as the command itself, with its
// arguments ("bench ...", "demo-server --stdio"): tests that send signals or
// time the exit run the real thing (execCLI), --stdio tests start real
// server processes (selfStdio), and bench --matrix starts its servers
// (os.Executable) without building anything. Every process descending from
// a test that sets it acts as the command.
const runEnv = "MCPOOL_CLI_TEST_RUN"

// slowExitArg, as the first argument under runEnv, starts a stdio server
// that is slow to exit (see TestMain).
const slowExitArg = "test-slow-exit-server"

// pidFileEnv names a file where a slow-exit server writes its process id.
const pidFileEnv = "MCPOOL_CLI_TEST_PIDFILE"

func TestMain(m *testing.M) {
	if os.Getenv(runEnv) == "1" {
		if len(os.Args) > 1 && os.Args[1] == slowExitArg {
			slowExitServer()
		}
		exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if spec := os.Getenv(tokenCacheWriterEnv); spec != "" { // tokencache_lock_test.go
		tokenCacheWriter(spec)
	}
	if addr := os.Getenv(httpEnv); addr != "" { // config_test.go
		os.Exit(run([]string{"demo-server", "--http", addr}, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// slowExitServer is a stdio server that serves normally, then keeps
// running after its input ends, as some servers do under load: the
// client's close must wait out its grace and send SIGTERM (which, not
// handled here, ends the process).
func slowExitServer() {
	if f := os.Getenv(pidFileEnv); f != "" {
		_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	_ = demoserver.New(demoserver.Options{}).Run(context.Background(), stdio.Transport())
	time.Sleep(time.Minute)
	os.Exit(0)
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

// selfStdio returns a --stdio value that starts this test binary as
// "mcpool demo-server --stdio". The path is quoted: the shell-words split
// must keep it whole.
func selfStdio(t *testing.T) string {
	t.Helper()
	return selfExe(t) + " demo-server --stdio"
}

// selfSlowExit returns a --stdio value that starts a stdio server slow to
// exit (see slowExitServer).
func selfSlowExit(t *testing.T) string {
	t.Helper()
	return selfExe(t) + " " + slowExitArg
}

// selfExe returns this test binary's path, quoted for --stdio, and makes
// the processes it starts act as the command (runEnv).
func selfExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	selfCommand(t)
	return shellQuote(exe)
}

// selfCommand makes children that this test binary starts act as the
// command (see TestMain).
func selfCommand(t *testing.T) {
	t.Helper()
	t.Setenv(runEnv, "1")
	// A race-enabled binary sleeps a second at exit by default; children
	// started per call would make the tests crawl.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
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
