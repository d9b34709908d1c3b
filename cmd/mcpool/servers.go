package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpool/mcpool"
)

// runServers starts every server of a config file, lists its tools, and
// prints each server's status, sessions and tool count.
func runServers(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var f oneShotFlags
	asJSON := false
	fs := newFlagSet("servers")
	f.target.register(fs)
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command, connects included")
	fs.BoolVar(&asJSON, "json", false, `print {"servers":[...]} as JSON instead of a table`)
	rest, err := parseFlags(fs, args, "servers --config FILE [--server NAME] [flags]", stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	if f.target.group.config == "" {
		return usageErrorf("--config FILE is required: the MCP config file whose servers to show")
	}
	if f.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	c, err := openGroup(&f.target, stderr)
	if err != nil {
		return err
	}
	defer func(ctx context.Context) { c.close(err != nil || ctx.Err() != nil) }(ctx) // the command's ctx, not the --timeout one below
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// Start (MinSessions) beside the list, not before it: a server
	// riding out failing connects would hold up the others' lists until
	// --timeout. Each server's failure shows in its row.
	started := make(chan struct{})
	go func() {
		defer close(started)
		_ = c.g.Start(ctx)
	}()
	_, _ = c.g.ListTools(ctx)
	<-started
	c.notice.done()
	// After --timeout the table still shows where each server stands:
	// that is what a user asks this command when a server is slow.
	timedOut := ctx.Err()
	st := c.g.Stats()
	if asJSON {
		err = writeServersJSON(stdout, st)
	} else {
		err = writeServersTable(stdout, st)
	}
	if err != nil {
		return err
	}
	var down []string
	for _, s := range st.Servers {
		if s.ListError != "" {
			down = append(down, s.Name)
		}
	}
	if timedOut != nil {
		return fmt.Errorf("timed out after %v (--timeout): %d of %d servers had not listed their tools: %s", f.timeout, len(down), len(st.Servers), strings.Join(down, ", "))
	}
	if down != nil {
		return fmt.Errorf("%d of %d servers unreachable: %s", len(down), len(st.Servers), strings.Join(down, ", "))
	}
	return nil
}

func writeServersTable(w io.Writer, st mcpool.GroupStats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATUS\tHEALTH\tSESSIONS\tTOOLS\tTARGET\tERROR")
	for _, s := range st.Servers {
		h := serverHealth(s)
		tools := "-"
		if s.Tools >= 0 && s.ListError == "" {
			tools = fmt.Sprint(s.Tools)
		}
		targets := make([]string, len(s.Replicas))
		for i, r := range s.Replicas {
			targets[i] = r.Target
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %.2f\t%d\t%s\t%s\t%s\n", s.Name, s.Status, h.Health, h.HealthScore, s.Sessions, tools, strings.Join(targets, ", "), printable(hideSecrets(withoutNextTry(s.ListError))))
	}
	return tw.Flush()
}

// jsonServer is one element of servers --json's "servers".
type jsonServer struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Health   string        `json:"health"`      // connected, connecting, reconnecting, degraded, unavailable
	Score    float64       `json:"healthScore"` // 0..1 (docs/library.md, "Health score")
	Sessions int           `json:"sessions"`
	Tools    int           `json:"tools"` // -1 when unknown
	Error    string        `json:"error,omitempty"`
	Replicas []jsonReplica `json:"replicas"`
}

type jsonReplica struct {
	Target   string  `json:"target"`
	Status   string  `json:"status"`
	Health   string  `json:"health"`
	Score    float64 `json:"healthScore"`
	Sessions int     `json:"sessions"`
	Breaker  string  `json:"breaker"`
}

func writeServersJSON(w io.Writer, st mcpool.GroupStats) error {
	out := struct {
		Servers []jsonServer `json:"servers"`
	}{Servers: []jsonServer{}}
	for _, s := range st.Servers {
		h := serverHealth(s)
		js := jsonServer{Name: s.Name, Status: string(s.Status), Health: string(h.Health), Score: h.HealthScore,
			Sessions: s.Sessions, Tools: s.Tools, Error: hideSecrets(withoutNextTry(s.ListError))}
		if s.ListError != "" {
			js.Tools = -1
		}
		for _, r := range s.Replicas {
			js.Replicas = append(js.Replicas, jsonReplica{Target: r.Target, Status: string(r.Pool.Status),
				Health: string(r.Pool.Health), Score: r.Pool.HealthScore, Sessions: r.Pool.Sessions, Breaker: r.Pool.Breaker})
		}
		out.Servers = append(out.Servers, js)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// serverHealth sums a server's replicas: the lowest score, the worst status.
func serverHealth(s mcpool.ServerStats) mcpool.Stats {
	all := make([]mcpool.Stats, len(s.Replicas))
	for i, r := range s.Replicas {
		all[i] = r.Pool
	}
	return mcpool.SumStats(all...)
}
