// Package faultproxy is a TCP proxy on loopback that tests drive to break
// the network between a client and a server: stall it (a partition that
// blackholes), drop it (connections reset, new ones refused), heal it.
//
// Semantics, chosen to be simple and deterministic:
//   - Stall: bytes read from either side of an open connection are
//     discarded, never forwarded; new connections are accepted (the kernel
//     completes the handshake anyway) and blackholed the same way, without
//     dialling the target. Bytes already read before Stall returned may still
//     be delivered, as packets already on the wire would be.
//   - Drop: every open connection is closed with a TCP RST (SO_LINGER 0) on
//     both sides, and new connections are reset as soon as they are
//     accepted (the closest a listener gets to refusing them).
//   - Heal: forwarding resumes for new connections. Connections that were
//     stalled are reset rather than resumed: their discarded bytes cannot be
//     replayed, so resuming them would corrupt the byte stream. This is what
//     a long partition does to real connections (timeouts, lost NAT or
//     conntrack state): clients notice at once and reconnect.
//
// A connection that one side closes on its own is closed gracefully (FIN).
// The proxy listens on 127.0.0.1 and only forwards to loopback addresses.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type mode int

const (
	forwarding mode = iota
	stalled
	dropping
)

// Proxy forwards TCP connections from Addr to a target address. Its methods
// are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	mode   mode
	links  map[*link]struct{}
	closed bool
}

// link is one proxied connection. upstream is nil while dialling and for
// connections born stalled; it is set under Proxy.mu while the link is
// open, and read only by whoever marked the link closed.
type link struct {
	client   net.Conn
	upstream net.Conn
	stalled  atomic.Bool // discard bytes instead of forwarding them
	closed   bool        // guarded by Proxy.mu
}

// New listens on 127.0.0.1 on a free port and forwards to target, a
// loopback host:port.
func New(target string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("faultproxy: target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall stops forwarding in both directions on every connection, open or
// new, without closing any.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = stalled
	for l := range p.links {
		l.stalled.Store(true)
	}
}

// Drop resets every open connection and, until Heal, every new one.
func (p *Proxy) Drop() {
	p.mu.Lock()
	p.mode = dropping
	links := p.takeLocked(func(*link) bool { return true })
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
}

// Heal resumes forwarding for new connections and resets those that were
// stalled (see the package comment).
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.mode = forwarding
	links := p.takeLocked(func(l *link) bool { return l.stalled.Load() })
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
}

// Close stops listening, resets every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := p.takeLocked(func(*link) bool { return true })
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.reset()
	}
	p.wg.Wait()
	return err
}

// takeLocked removes the links that match and marks them closed; the caller
// resets them outside the lock.
func (p *Proxy) takeLocked(match func(*link) bool) []*link {
	var out []*link
	for l := range p.links {
		if match(l) {
			delete(p.links, l)
			l.closed = true
			out = append(out, l)
		}
	}
	return out
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // a transient accept error (EMFILE…)
			continue
		}
		p.mu.Lock()
		if p.closed || p.mode == dropping {
			p.mu.Unlock()
			resetConn(c)
			continue
		}
		l := &link{client: c}
		l.stalled.Store(p.mode == stalled)
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target (unless the link is born stalled) and pumps bytes
// both ways until either side ends or the proxy resets the link.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer p.end(l)
	if l.stalled.Load() {
		pump(l, nil, l.client) // blackhole until reset
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if l.closed {
		p.mu.Unlock()
		up.Close()
		return
	}
	l.upstream = up
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pump(l, l.client, up)
		p.end(l)
	}()
	pump(l, up, l.client)
}

// pump copies src to dst until src fails or dst does; while the link is
// stalled (or dst is nil) it reads and discards.
func pump(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !l.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// end closes a link whose side ended on its own, gracefully (FIN), so that
// bytes already forwarded are not lost to a reset. A link the proxy already
// took (Drop, Heal, Close) is left to it.
func (p *Proxy) end(l *link) {
	p.mu.Lock()
	mine := !l.closed
	if mine {
		delete(p.links, l)
		l.closed = true
	}
	p.mu.Unlock()
	if mine {
		l.client.Close()
		if l.upstream != nil {
			l.upstream.Close()
		}
	}
}

// reset closes both connections with RST. The caller marked l closed under
// Proxy.mu, and upstream is only set under it while l is open, so it no
// longer changes.
func (l *link) reset() {
	resetConn(l.client)
	if l.upstream != nil {
		resetConn(l.upstream)
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST instead of FIN
	}
	_ = c.Close()
}
