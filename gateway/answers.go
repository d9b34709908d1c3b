package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Over stdio (and other transports served with Serve), a call's answer is
// written after the gateway's handler returns, and the SDK drops answers
// once the session starts closing. So that Drain lets every accepted call's
// answer out, the transport counts requests read and answers written.

type answerCounter struct{ pending atomic.Int64 }

type countingTransport struct {
	mcp.Transport
	c    *answerCounter
	conn **countingConn // set on Connect, so that Serve can settle it
}

// Connect implements mcp.Transport, counting the connection's requests and answers.
func (t countingTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Connection: conn, c: t.c}
	if t.conn != nil {
		*t.conn = cc
	}
	return cc, nil
}

// countingConn counts its own requests not yet answered, so that when the
// connection ends with answers never written (the client quit mid-call:
// the SDK writes nothing after its input ends) they leave the gateway's
// count too.
type countingConn struct {
	mcp.Connection
	c      *answerCounter
	mu     sync.Mutex
	own    int64
	closed bool
}

// Read implements mcp.Connection.
func (c *countingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if req, ok := msg.(*jsonrpc.Request); ok && err == nil && req.IsCall() {
		c.mu.Lock()
		if !c.closed {
			c.own++
			c.c.pending.Add(1)
		}
		c.mu.Unlock()
	}
	return msg, err
}

// Write implements mcp.Connection.
func (c *countingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	err := c.Connection.Write(ctx, msg)
	if _, ok := msg.(*jsonrpc.Response); ok {
		c.mu.Lock()
		if c.own > 0 {
			c.own--
			c.c.pending.Add(-1)
		}
		c.mu.Unlock()
	}
	return err
}

// Close implements mcp.Connection.
func (c *countingConn) Close() error {
	c.settle()
	return c.Connection.Close()
}

// settle drops the connection's unanswered requests from the count: no
// answer can reach a closed connection.
func (c *countingConn) settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.c.pending.Add(-c.own)
	c.own = 0
}
