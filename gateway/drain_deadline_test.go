package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// drainSlack is what Drain may take past its DrainTimeout to cancel the
// calls still in flight and write their answers (a cancelled call ends at
// once; DrainAnswerWait is only its bound).
const drainSlack = time.Second

// At the drain's deadline every call still in flight is cancelled, by
// whatever path it came: the fast path (a plain call), the SDK's (a call
// with a progress token), a 2025-11-25 session or a 2026-07-28 stateless
// request, or a session served with Serve (stdio). The upstream sees the
// call cancelled, its caller is answered CodeUnavailable with reason
// "draining", and Drain returns within its timeout and a little more.
func TestDrainDeadlineCancelsEveryCall(t *testing.T) {
	cases := []struct {
		name     string
		version  string // "" is 2026-07-28, stateless
		progress bool   // a progress token: the SDK's path
		stdio    bool
	}{
		{name: "2025-11-25/fast-path", version: "2025-11-25"},
		{name: "2025-11-25/sdk-path", version: "2025-11-25", progress: true},
		{name: "2026-07-28/fast-path"},
		{name: "2026-07-28/sdk-path", progress: true},
		{name: "stdio", stdio: true},
		{name: "stdio/progress", stdio: true, progress: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGate()
			defer g.release()
			up := newPool(t, mcpool.Config{URL: g.url(t)})
			opts := gateway.Options{DrainTimeout: 300 * time.Millisecond, Servers: []gateway.Server{
				{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)},
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var gw *gateway.Gateway
			var cs *mcp.ClientSession
			if c.stdio {
				gw, cs = serveOverPipes(t, opts)
			} else {
				var url string
				gw, url = startGateway(t, opts)
				cs = connect(t, url, c.version, nil)
			}
			before := gateway.RelayHandled(gw)
			called := make(chan error, 1)
			go func() {
				params := &mcp.CallToolParams{Name: "gate__block", Arguments: map[string]any{}}
				if c.progress {
					params.SetProgressToken("p")
				}
				_, err := cs.CallTool(ctx, params)
				called <- err
			}()
			eventually(t, "the call running upstream", func() bool { return g.running.Load() == 1 })
			if fast := gateway.RelayHandled(gw) != before; fast != (!c.stdio && !c.progress) {
				t.Fatalf("the call took the fast path: %v; the case wants %v", fast, !c.stdio && !c.progress)
			}

			start := time.Now()
			err := gw.Drain(ctx)
			took := time.Since(start)
			var derr *gateway.DrainError
			if !errors.As(err, &derr) || derr.InFlight != 1 || derr.Unended || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Drain: %v; want a DrainError for 1 call in flight, cancelled and answered", err)
			}
			if limit := opts.DrainTimeout + drainSlack; took > limit {
				t.Errorf("Drain took %v, want at most %v", took, limit)
			}
			select {
			case err = <-called:
			case <-time.After(10 * time.Second):
				t.Fatal("the caller got no answer after the drain")
			}
			var je *jsonrpc.Error
			var data gateway.ErrorData
			if !errors.As(err, &je) || je.Code != gateway.CodeUnavailable || json.Unmarshal(je.Data, &data) != nil || data.Reason != "draining" || data.RetryAfterMs != 0 {
				t.Errorf("the caller got %v; want CodeUnavailable with reason draining and no retry hint", err)
			}
			eventually(t, "the upstream to see the call cancelled", func() bool { return g.cancelled.Load() == 1 })
			if g.finished.Load() != 0 {
				t.Errorf("%d calls finished upstream, want none", g.finished.Load())
			}
			if st := gw.Status(); st.InFlight != 0 {
				t.Errorf("%d calls in flight after the drain", st.InFlight)
			}
		})
	}
}

// serveOverPipes serves a gateway made with opts to a client over pipes,
// as Serve does stdio, and closes both when the test ends.
func serveOverPipes(t *testing.T, opts gateway.Options) (*gateway.Gateway, *mcp.ClientSession) {
	t.Helper()
	opts.Logger = quiet()
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(context.Background(), &mcp.IOTransport{Reader: inR, Writer: outW}) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "d", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		_ = gw.Close(context.Background())
		_ = inW.Close()
		_ = outR.Close()
		<-served
	})
	return gw, cs
}
