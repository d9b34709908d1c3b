package mcpool_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/stdio"
	"go.uber.org/goleak"
)

// stdioServerEnv makes the test binary act as a go-sdk stdio MCP server, so
// stdio tests start a real child process without building anything.
const stdioServerEnv = "MCPOOL_TEST_STDIO_SERVER"

// stdioStartDelayEnv, a duration, makes that server wait before it reads
// its stdin: a server slow to start (node takes a few hundred ms).
const stdioStartDelayEnv = "MCPOOL_TEST_STDIO_START_DELAY"

func TestMain(m *testing.M) {
	if mode := os.Getenv(misbehaveEnv); mode != "" {
		runMisbehavingStdioServer(mode)
	}
	if os.Getenv(stdioServerEnv) == "1" {
		if d, err := time.ParseDuration(os.Getenv(stdioStartDelayEnv)); err == nil {
			time.Sleep(d) // a server slow to start, as node is
		}
		if err := demoserver.New(demoserver.Options{}).Run(context.Background(), stdio.Transport()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The go-sdk *server* sessions these tests run as peers are not the
	// pool's goroutines: a connect cut short (ConnectTimeout, or a Close
	// while the pool grows) before initialize's answer arrived never
	// learned its session id, so no client can delete that session, and a
	// test server without a session timeout keeps its reader until the
	// process ends (the spec leaves such sessions to the server's
	// timeout). Every goroutine of the pool, its client sessions and
	// transports included, is still checked.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/modelcontextprotocol/go-sdk/mcp.(*streamableServerConn).Read"))
}
