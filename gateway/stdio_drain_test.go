package gateway_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A client served with Serve (stdio, say) that quits mid-call leaves no
// answer owed: Drain returns at once instead of waiting its DrainTimeout.
func TestServeClientQuitMidCallDrainsAtOnce(t *testing.T) {
	g := newGate()
	defer g.release()
	up := newPool(t, mcpool.Config{URL: g.url(t)})
	gw, err := gateway.New(gateway.Options{Logger: quiet(), DrainTimeout: 10 * time.Minute, Servers: []gateway.Server{
		{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Close(context.Background()) }()
	// Pipes as stdin and stdout: closing the client's writer is stdin's
	// EOF at the gateway.
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	serverT := &mcp.IOTransport{Reader: inR, Writer: outW}
	clientT := &mcp.IOTransport{Reader: outR, Writer: inW}
	defer outR.Close()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(context.Background(), serverT) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "d", Version: "1"}, nil).Connect(ctx, clientT, nil)
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan error, 1)
	go func() { _, err := call(ctx, cs, "gate__block", map[string]any{}); called <- err }()
	eventually(t, "the call running upstream", func() bool { return g.running.Load() == 1 })
	_ = inW.Close() // the client quits mid-call: stdin ends
	defer cs.Close()
	// The call finishes upstream after the client left: its answer has
	// nowhere to go.
	g.release()
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("Serve did not return after the client quit")
	}
	<-called
	eventually(t, "the call to end at the gateway", func() bool { return gw.Status().InFlight == 0 })
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer dcancel()
	if err := gw.Drain(dctx); err != nil {
		t.Errorf("Drain after the client quit: %v; want nil at once (no answer can be written)", err)
	}
}
