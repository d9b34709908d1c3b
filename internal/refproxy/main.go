// Command refproxy is net/http's own reverse proxy (httputil.ReverseProxy)
// and nothing else: no MCP decoding, routing or pooling. scripts/gateway-bench
// runs it in front of the same server as the gateway, so that the gateway's
// CPU per relayed call can be read against what any relay built on net/http
// spends on the same machine in the same run.
//
// Usage: refproxy LISTEN_ADDR UPSTREAM_URL
package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: refproxy LISTEN_ADDR UPSTREAM_URL")
	}
	u, err := url.Parse(os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256 // as the gateway's upstream client: no connection churn
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = t
	rp.FlushInterval = -1                    // SSE answers pass through as they come
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client that hangs up mid-stream is not news
	log.Fatal(http.ListenAndServe(os.Args[1], rp))
}
