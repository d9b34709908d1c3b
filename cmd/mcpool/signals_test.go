//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// quickExit bounds how long the command may take to end after its
// --timeout or a signal, when the server's work would take 20s: "about a
// second" with room for a loaded machine.
const quickExit = 3 * time.Second

// stuckServer serves the demo server on loopback HTTP, where tool calls
// (and, with blockLists, tools/list) report that they started on started
// and then run until the test ends. It never cancels them on its own
// behalf: the command must not depend on the server to stop in time.
func stuckServer(t *testing.T, blockLists bool) (url string, started <-chan string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan string, 100)
	srv := demoserver.New(demoserver.Options{
		Shutdown: ctx,
		OnCall: func(_ *mcp.ServerSession, tool string) func() {
			ch <- "tools/call " + tool
			return func() {}
		},
	})
	if blockLists {
		srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(rctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
				if method == "tools/list" {
					ch <- method
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return next(rctx, method, req)
			}
		})
	}
	hs := httptest.NewServer(demoserver.Handler(srv, false, 0))
	t.Cleanup(func() {
		cancel() // ends the calls still running, so Close can return
		hs.CloseClientConnections()
		hs.Close()
		for ss := range srv.Sessions() {
			ss.Close()
		}
	})
	return hs.URL, ch
}

func waitStarted(t *testing.T, started <-chan string, want string) {
	t.Helper()
	select {
	case got := <-started:
		if got != want {
			t.Fatalf("server saw %q first, want %q", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server saw no %s within 30s", want)
	}
}

func TestCallTimeoutExitsOnTime(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"embedded", nil},
		{"stdio", []string{"--stdio", selfStdio(t)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			p := execCLI(t, append([]string{"call", "--timeout", "1s", "sleep", `{"ms":20000}`}, c.args...)...)
			code, took := p.wait(start)
			wantOneLineError(t, p.result(), 1, "timed out after 1s (--timeout)")
			if took < time.Second || took > quickExit {
				t.Errorf("exited %v after it started, want between 1s and %v", took, quickExit)
			}
			_ = code
		})
	}
}

// TestInterrupt sends SIGINT (or SIGTERM) to call, tools and bench while
// the server is working on their request, and wants each to end within
// quickExit, with the signal's exit status and one line saying why.
func TestInterrupt(t *testing.T) {
	for _, c := range []struct {
		name      string
		args      []string
		blockList bool
		await     string
		sig       syscall.Signal
	}{
		{"call", []string{"call", "sleep", `{"ms":20000}`}, false, "tools/call sleep", syscall.SIGINT},
		{"call SIGTERM", []string{"call", "sleep", `{"ms":20000}`}, false, "tools/call sleep", syscall.SIGTERM},
		{"tools", []string{"tools"}, true, "tools/list", syscall.SIGINT},
		{"bench per-call", []string{"bench", "--tool", "sleep", "--args", `{"ms":20000}`, "--calls", "4", "--concurrency", "2"},
			false, "tools/call sleep", syscall.SIGINT},
		{"bench pooled", []string{"bench", "--modes", "pooled", "--tool", "sleep", "--args", `{"ms":20000}`, "--calls", "4", "--concurrency", "2"},
			false, "tools/call sleep", syscall.SIGINT},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, started := stuckServer(t, c.blockList)
			p := execCLI(t, append(c.args, "--url", url)...)
			waitStarted(t, started, c.await)
			sent := time.Now()
			p.signal(c.sig)
			code, took := p.wait(sent)
			if want := 128 + int(c.sig); code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
			if took > quickExit {
				t.Errorf("exited %v after the signal, want within %v", took, quickExit)
			}
			r := p.result()
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[c.sig]
			// bench may have drawn its progress line ("\r  mode: n/N calls")
			// before the signal; the rest is the one line saying why.
			msg := r.stderr[strings.LastIndex(r.stderr, "\n"+"mcpool:")+1:]
			if want := "mcpool: " + c.args[0] + ": interrupted by " + name + "\n"; msg != want || strings.Count(r.stderr, "mcpool:") != 1 {
				t.Errorf("stderr %q, want it to end with %q, the only line saying mcpool:", r.stderr, want)
			}
		})
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	ctx, stop := withSignals(&stderr, func(code int) { exited <- code })
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	var in *interrupted
	if !errors.As(context.Cause(ctx), &in) || in.Error() != "interrupted by SIGINT" {
		t.Fatalf("cause %v, want interrupted by SIGINT", context.Cause(ctx))
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) after the first signal", code)
	default:
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := <-exited; code != 130 {
		t.Errorf("exit status %d after the second SIGINT, want 130", code)
	}
	stop()
	if got := stderr.String(); got != "mcpool: SIGINT again: exiting at once\n" {
		t.Errorf("stderr %q", got)
	}
}

func TestSecondSignalReal(t *testing.T) {
	url, started := stuckServer(t, false)
	p := execCLI(t, "call", "sleep", `{"ms":20000}`, "--url", url)
	waitStarted(t, started, "tools/call sleep")
	sent := time.Now()
	p.signal(syscall.SIGINT)
	p.signal(syscall.SIGINT)
	code, took := p.wait(sent)
	if code != 130 || took > quickExit {
		t.Errorf("exit status %d %v after two SIGINTs, want 130 within %v", code, took, quickExit)
	}
}

// TestDemoServerSignal stops demo-server (HTTP and stdio) while a 20s call
// runs on it: it must say so and exit within quickExit.
func TestDemoServerSignal(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		p := execCLI(t, "demo-server", "--http", "127.0.0.1:0", "--verbose")
		p.waitStderr("\n")
		line := strings.SplitN(p.stderr.String(), "\n", 2)[0]
		url, ok := strings.CutPrefix(line, "serving MCP on ")
		if !ok {
			t.Fatalf("first line %q", line)
		}
		// The caller is a process of its own, so that nothing in this one
		// waits on the server's end of the call.
		caller := execCLI(t, "call", "--url", url, "sleep", `{"ms":20000}`)
		p.waitStderr("call sleep: started")
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		code, took := p.wait(sent)
		if code != 0 || took > quickExit {
			t.Errorf("exit status %d %v after SIGTERM, want 0 within %v; stderr:\n%s", code, took, quickExit, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "mcpool: demo-server: interrupted by SIGTERM: shutting down") {
			t.Errorf("stderr does not say it is shutting down:\n%s", p.stderr.String())
		}
		caller.wait(sent)
		if r := caller.result(); r.code != 1 {
			t.Errorf("the caller: status %d, stderr %q; want 1: its call was cut short", r.code, r.stderr)
		}
	})
	t.Run("stdio", func(t *testing.T) {
		var stdin io.WriteCloser
		var stdout io.ReadCloser
		p := execCLIWith(t, func(cmd *exec.Cmd) {
			var err error
			cmd.Stdout = nil
			if stdin, err = cmd.StdinPipe(); err != nil {
				t.Fatal(err)
			}
			if stdout, err = cmd.StdoutPipe(); err != nil {
				t.Fatal(err)
			}
		}, "demo-server", "--stdio", "--verbose")
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
			Connect(context.Background(), &mcp.IOTransport{Reader: stdout, Writer: stdin}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The call is cut short by a tool error (its handler saw its context
		// cancelled) or by the connection closing; it must not succeed.
		cutShort := make(chan bool, 1)
		go func() {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 20000}})
			cutShort <- err != nil || res.IsError
		}()
		p.waitStderr("call sleep: started")
		sent := time.Now()
		p.signal(syscall.SIGINT)
		code, took := p.wait(sent)
		if code != 0 || took > quickExit {
			t.Errorf("exit status %d %v after SIGINT, want 0 within %v; stderr:\n%s", code, took, quickExit, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "mcpool: demo-server: interrupted by SIGINT: shutting down") {
			t.Errorf("stderr does not say it is shutting down:\n%s", p.stderr.String())
		}
		if !<-cutShort {
			t.Error("the call succeeded although the server stopped 20s early")
		}
		cs.Close()
	})
}

// TestConnectTimeoutNamesFlag points tools and bench at a server that
// accepts connections and never answers: the error names the flag to raise.
func TestConnectTimeoutNamesFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	url := "http://" + ln.Addr().String() + "/mcp"
	// The pool may retry a connect that timed out, riding out a server
	// that is slow to start, until --timeout: it says it waits, and the
	// message names the flag either way.
	for _, args := range [][]string{
		{"tools", "--url", url, "--connect-timeout", "300ms", "--timeout", "2s"},
		{"bench", "--url", url, "--connect-timeout", "300ms", "--timeout", "2s"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			p := execCLI(t, args...)
			_, took := p.wait(start)
			r := p.result()
			wantWaitThenError(t, r, url+" (no answer within its connect timeout)", "--connect-timeout", "300ms")
			if took > 2*time.Second+quickExit {
				t.Errorf("took %v, want within --timeout and %v", took, quickExit)
			}
		})
	}
}

// TestStoppedCommandLeavesNoServer stops call by its --timeout while its
// stdio server ignores the end of its input: the command exits on time and
// the server does not outlive it (it gets the SIGTERM that the cut-short
// close would have sent).
func TestStoppedCommandLeavesNoServer(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv(pidFileEnv, pidFile)
	start := time.Now()
	p := execCLI(t, "call", "--timeout", "1s", "--stdio", selfSlowExit(t), "sleep", `{"ms":20000}`)
	_, took := p.wait(start)
	wantOneLineError(t, p.result(), 1, "timed out after 1s")
	if took > quickExit {
		t.Errorf("exited %v after it started, want within %v", took, quickExit)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the server wrote no pid: %v", err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	// It would linger a minute on its own; SIGTERM ends it at once.
	deadline := time.Now().Add(20 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the stdio server (pid %d) still runs 20s after the command exited", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// TestInterruptMatrix interrupts bench --matrix while it runs: it exits on
// time, and the demo servers it started (children running this binary as
// "demo-server") all end with it.
func TestInterruptMatrix(t *testing.T) {
	p := execCLI(t, "bench", "--matrix")
	p.waitStderr(" calls") // the progress line: a row is under way
	sent := time.Now()
	p.signal(syscall.SIGINT)
	code, took := p.wait(sent)
	if code != 130 || took > quickExit {
		t.Errorf("exit status %d %v after SIGINT, want 130 within %v; stderr:\n%s", code, took, quickExit, p.stderr.String())
	}
	waitNoServers(t)
}

// TestKilledMatrixLeavesNoServer kills bench --matrix outright (SIGKILL,
// which it cannot handle) while a row against its HTTP demo server runs:
// the server ends with it rather than listening on.
func TestKilledMatrixLeavesNoServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ends a child with its parent")
	}
	p := execCLI(t, "bench", "--matrix", "--rows", "http")
	p.waitStderr(" calls") // the progress line: a row is under way
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers(exe)) == 0 {
		t.Fatal("no demo server runs while an HTTP row is under way")
	}
	p.signal(syscall.SIGKILL)
	p.wait(time.Now())
	waitNoServers(t)
}

// waitNoServers waits up to 10s for the demo servers that bench --matrix
// started (children running this binary as "demo-server") to be gone, and
// kills any left before failing.
func waitNoServers(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := servers(exe)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("demo servers %v still run 10s after bench --matrix exited", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servers returns the live processes running exe as "demo-server".
func servers(exe string) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 2 || args[0] != exe || args[1] != "demo-server" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if running(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// watchFile compares with the file as it was when the watch began, not at
// its first look a moment later: a change written at once (as the gateway
// reads the file for the first time just after) is a change.
func TestWatchFileSeesAChangeMadeAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, `{"mcpServers": {}}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := watchFile(ctx, path, 20*time.Millisecond)
	writeConfigFile(t, path, `{"mcpServers": {"a": {"command": "srv"}}}`)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change seen 10s after the file changed")
	}
}

// A SIGHUP that comes while the gateway starts (here: waiting for a server
// slow to answer initialize) neither ends it, as SIGHUP's default would,
// nor is lost: the gateway serves, then reloads.
func TestGatewaySIGHUPWhileStarting(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "slow-start", Version: "1"}, nil)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "initialize" || method == "server/discover" {
				select {
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
				}
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() {
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	})
	path := filepath.Join(t.TempDir(), "mcp.json")
	writeConfigFile(t, path, gatewayConfig(map[string]string{"slow": ts.URL}))
	p := execCLI(t, "gateway", "--config", path, "--listen", "127.0.0.1:0")
	p.waitStderr("msg=starting")
	p.signal(syscall.SIGHUP)
	p.waitStderr("serving MCP")
	p.waitStderr("reloaded the config")
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	if code, _ := p.wait(sent); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr.String())
	}
}
