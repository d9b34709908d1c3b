package gateway_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
)

// Serve the servers of a config file to any MCP client, with a graceful
// drain on SIGTERM. This is what "mcpool gateway" does.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	file, err := config.Load("mcp.json") // its servers, and its "gateway" object
	if err != nil {
		log.Fatal(err)
	}
	gc := &file.Group
	settings := file.Gateway.Servers // the file's "gateway" object
	// One rule names every server's tools and prompts, passthrough ones
	// too: the names the Group lists are the names the gateway lists.
	naming, err := gc.Naming()
	if err != nil {
		log.Fatal(err)
	}
	var gw *gateway.Gateway
	gc.OnListChanged = func(server, kind string) { gw.ListChanged(server, kind) }
	// Passthrough servers are dialled with each client's credentials, never
	// the gateway's: the Group leaves them out.
	group, err := mcpool.NewGroup(*gateway.WithoutPassthrough(gc, settings))
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close(context.Background())
	_ = group.Start(ctx) // servers that fail to start are retried in the background

	gw, err = gateway.New(gateway.Options{
		Servers: gateway.GroupServers(group, gc, settings),
		Naming:  naming,
		Token:   os.Getenv("MCPOOL_GATEWAY_TOKEN"),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: "127.0.0.1:7300", Handler: gw.Handler()}
	go srv.ListenAndServe()

	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = gw.Drain(dctx) // readiness drops; calls in flight finish
	_ = gw.Close(dctx) // downstream sessions end
	_ = srv.Shutdown(dctx)
}
