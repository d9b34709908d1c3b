package gateway

import (
	"context"
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
	c *answerCounter
}

func (t countingTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return countingConn{conn, t.c}, nil
}

type countingConn struct {
	mcp.Connection
	c *answerCounter
}

func (c countingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if req, ok := msg.(*jsonrpc.Request); ok && err == nil && req.IsCall() {
		c.c.pending.Add(1)
	}
	return msg, err
}

func (c countingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	err := c.Connection.Write(ctx, msg)
	if _, ok := msg.(*jsonrpc.Response); ok {
		c.c.pending.Add(-1)
	}
	return err
}
