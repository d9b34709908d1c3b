// Package stdio serves MCP on the process's standard input and output
// through the runtime's poller, never in a blocking read.
//
// Why: a Go process whose goroutine enters a blocking read of a pipe at the
// moment the garbage collector starts to stop the world can stay stopped
// until that read returns (Go 1.26 and 1.27: entersyscall checks for a
// pending stop before it marks the goroutine as in a system call, and the
// stop takes processors back from system calls only once, before it
// waits). For a stdio MCP server the read returns only when the client
// writes, and the client is waiting for the server's answer: the call
// hangs until the client's deadline. Seen 5 times in about 1.2 million
// calls to a busy stdio server on 2 cores; a read through the poller is
// not a blocking system call and cannot be caught that way.
package stdio

import (
	"io"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Transport returns a transport on the process's stdin and stdout: when
// they are pipes or sockets (as an MCP client's stdio connection is), read
// and written through the runtime's poller; otherwise (a terminal, a file)
// mcp.StdioTransport. Like mcp.StdioTransport, closing the connection
// closes stdin and leaves stdout open. Call it once per process: it puts
// both descriptors in non-blocking mode, which other readers and writers of
// the same pipes (there should be none) would see.
func Transport() mcp.Transport {
	in, out, ok := pollable(0, 1)
	if !ok {
		return &mcp.StdioTransport{}
	}
	return &mcp.IOTransport{Reader: in, Writer: nopCloser{out}}
}

// nopCloser leaves stdout open when the connection closes, as
// mcp.StdioTransport does: the process may still write to it.
type nopCloser struct{ io.Writer }

// Close does nothing.
func (nopCloser) Close() error { return nil }
