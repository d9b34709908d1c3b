package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every line back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

// roundTrip sends a line and reads the echo within d.
func (c *client) roundTrip(msg string, d time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func mustEcho(t *testing.T, c *client, msg string) {
	t.Helper()
	got, err := c.roundTrip(msg, 2*time.Second)
	if err != nil || got != msg {
		t.Fatalf("round trip %q: got %q, %v", msg, got, err)
	}
}

func mustTimeout(t *testing.T, c *client) {
	t.Helper()
	_, err := c.roundTrip("lost", 100*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled connection: got %v, want a read timeout", err)
	}
}

// mustBroken asserts the connection was closed by the proxy: a reset or an
// EOF, at once rather than after a timeout.
func mustBroken(t *testing.T, c *client) {
	t.Helper()
	_, err := c.roundTrip("x", 2*time.Second)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want the connection closed", err)
	}
}

func TestForwards(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	for _, m := range []string{"a", "bb", "ccc"} {
		mustEcho(t, c, m)
	}
}

func TestStallAndHeal(t *testing.T) {
	p := newProxy(t)
	old := dial(t, p)
	mustEcho(t, old, "before")
	p.Stall()
	mustTimeout(t, old)
	born := dial(t, p) // accepted, then blackholed
	mustTimeout(t, born)

	p.Heal()
	mustBroken(t, old) // stalled connections are reset on Heal
	mustBroken(t, born)
	mustEcho(t, dial(t, p), "after")
}

func TestDropAndHeal(t *testing.T) {
	p := newProxy(t)
	old := dial(t, p)
	mustEcho(t, old, "before")
	p.Drop()
	mustBroken(t, old)
	// New connections are reset at once; Dial itself may succeed first.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		mustBroken(t, &client{c, bufio.NewReader(c)})
	}
	p.Heal()
	mustEcho(t, dial(t, p), "after")
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	mustEcho(t, c, "x")
	p.Stall()
	dial(t, p) // a stalled one too
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mustBroken(t, c)
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("Close left the listener open")
	}
}

// Modes change while traffic flows: no data race, no goroutine left, and the
// proxy forwards again once healed.
func TestConcurrentFaults(t *testing.T) {
	p := newProxy(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					continue
				}
				cl := &client{c, bufio.NewReader(c)}
				for range 5 {
					if _, err := cl.roundTrip("ping", 20*time.Millisecond); err != nil {
						break
					}
				}
				c.Close()
			}
		})
	}
	for i := range 30 {
		switch i % 3 {
		case 0:
			p.Stall()
		case 1:
			p.Drop()
		case 2:
			p.Heal()
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Heal()
	close(stop)
	wg.Wait()
	mustEcho(t, dial(t, p), "still works")
}

// A side that closes on its own is closed gracefully: bytes already sent
// arrive, then EOF, never a reset.
func TestUpstreamCloseIsGraceful(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := strings.Repeat("x", 1<<20) + "\n"
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, payload)
		c.Close()
	}()
	p, err := New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dial(t, p)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != payload {
		t.Fatalf("read %d bytes, %v; want %d bytes then EOF", len(got), err, len(payload))
	}
	<-done
}

func TestOnlyLoopback(t *testing.T) {
	for _, target := range []string{"example.com:80", "10.0.0.1:80", "no-port"} {
		if p, err := New(target); err == nil {
			p.Close()
			t.Errorf("New(%q) accepted a non-loopback target", target)
		}
	}
}
