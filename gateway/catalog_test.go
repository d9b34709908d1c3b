package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// failingLists is an Upstream whose lists fail while failing is set (a unit
// test of the catalog watcher: the pool under it is real).
type failingLists struct {
	gateway.Upstream
	failing atomic.Bool
}

func (f *failingLists) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	if f.failing.Load() {
		return nil, errors.New("listing failed")
	}
	return f.Upstream.ListTools(ctx)
}

// A server whose tool list fails leaves the merged list (as the log says),
// and joins it again when it answers.
func TestFailingServerLeavesMergedList(t *testing.T) {
	up := &failingLists{Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: demoURL(t)}))}
	other := newPool(t, mcpool.Config{URL: demoURL(t)})
	gw, url := startGateway(t, gateway.Options{CatalogPoll: 5 * time.Millisecond, Servers: []gateway.Server{
		{Name: "flaky", Mode: gateway.ModeShared, Upstream: up},
		{Name: "steady", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(other)},
	}})
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed := func(prefix string) bool {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range res.Tools {
			if strings.HasPrefix(tool.Name, prefix) {
				return true
			}
		}
		return false
	}
	if !listed("flaky__") || !listed("steady__") {
		t.Fatal("both servers' tools should be listed at first")
	}
	up.failing.Store(true)
	eventually(t, "the failing server's tools to leave the list", func() bool { return !listed("flaky__") })
	if !listed("steady__") {
		t.Error("the other server's tools left too")
	}
	if st := gw.Status().Servers[0]; st.Tools != 0 || st.ListError == "" {
		t.Errorf("status: %d tools, list error %q; want 0 and the error", st.Tools, st.ListError)
	}
	up.failing.Store(false)
	eventually(t, "the server's tools to come back", func() bool { return listed("flaky__") })
}
