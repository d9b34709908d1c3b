package mcpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TemplateServer routes a URI to the one server whose resource template
// matches it, and names every candidate when several servers' do.
func TestTemplateServer(t *testing.T) {
	lists := []mcpool.ServerTemplates{
		{Server: "files", Templates: []*mcp.ResourceTemplate{{URITemplate: "file:///{path}"}, {URITemplate: "file:///docs/{name}"}}},
		{Server: "db", Templates: []*mcp.ResourceTemplate{{URITemplate: "db://{table}/{id}"}}},
		{Server: "mirror", Templates: []*mcp.ResourceTemplate{{URITemplate: "db://{table}/{id}"}}},
	}
	if got, err := mcpool.TemplateServer(lists, "file:///docs/readme"); err != nil || got != "files" {
		t.Fatalf("two templates of one server: %q, %v; want files", got, err)
	}
	_, err := mcpool.TemplateServer(lists, "db://users/7")
	var amb *mcpool.AmbiguousResourceError
	if !errors.As(err, &amb) || len(amb.Servers) != 2 || amb.Servers[0] != "db" || amb.Servers[1] != "mirror" {
		t.Fatalf("templates of two servers: %v, want an AmbiguousResourceError naming db and mirror", err)
	}
	if _, err := mcpool.TemplateServer(lists, "http://example.com/x"); !errors.Is(err, mcpool.ErrNotFound) {
		t.Fatalf("no template matches: %v, want ErrNotFound", err)
	}
}

// templateServer is a go-sdk server with one resource template, whose
// completion offers the scheme.
func templateServer(t *testing.T, scheme string) string {
	s := mcp.NewServer(&mcp.Implementation{Name: scheme, Version: "1"}, &mcp.ServerOptions{
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{scheme}}}, nil
		},
	})
	s.AddResourceTemplate(&mcp.ResourceTemplate{Name: scheme, URITemplate: scheme + "://{id}"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: scheme}}}, nil
		})
	return httpServer(t, s, false)
}

// A Group lists every server's resource templates and finds the server of
// a URI by them; a GroupServer completes under its own names.
func TestGroupResourceTemplates(t *testing.T) {
	g := newGroup(t, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{
		{Name: "a", Config: mcpool.Config{URL: templateServer(t, "alpha")}},
		{Name: "b", Config: mcpool.Config{URL: templateServer(t, "beta")}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lists, err := g.ListResourceTemplates(ctx)
	if err != nil || len(lists) != 2 || lists[1].Server != "b" || len(lists[1].Templates) != 1 || lists[1].Templates[0].URITemplate != "beta://{id}" {
		t.Fatalf("ListResourceTemplates: %+v, %v", lists, err)
	}
	if s, err := g.ResourceTemplateServer(ctx, "beta://7"); err != nil || s != "b" {
		t.Fatalf("ResourceTemplateServer(beta://7): %q, %v; want b", s, err)
	}
	res, err := g.Server("a").Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "alpha://{id}"},
		Argument: mcp.CompleteParamsArgument{Name: "id", Value: ""}})
	if err != nil || len(res.Completion.Values) != 1 || res.Completion.Values[0] != "alpha" {
		t.Fatalf("Complete on server a: %+v, %v", res, err)
	}
}
