package mcpool_test

import (
	"context"
	"os"
	"testing"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

// stdioServerEnv makes the test binary act as a go-sdk stdio MCP server, so
// stdio tests start a real child process without building anything.
const stdioServerEnv = "MCPOOL_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(misbehaveEnv); mode != "" {
		runMisbehavingStdioServer(mode)
	}
	if os.Getenv(stdioServerEnv) == "1" {
		if err := demoserver.New(demoserver.Options{}).Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
