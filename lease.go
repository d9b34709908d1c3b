package mcpool

import "github.com/modelcontextprotocol/go-sdk/mcp"

// Lease is room for one call on one session of a [Pool], returned by
// [Pool.Acquire]. It is a small value: copying it is cheap, and Acquire and
// Release allocate nothing.
//
// Use the session for as many requests as you like while you hold the lease,
// then call Release exactly once. Releasing again, through this value or a
// copy, is harmless: each lease carries a generation that the pool checks,
// so a stale Release can never free room that another caller holds.
// The zero Lease is not valid for Session; its Release does nothing.
type Lease struct {
	p    *Pool
	s    *session
	slot int32
	gen  uint64
}

// Session returns the leased session. It is shared: other leases may be
// running calls on it at the same moment, which MCP allows. Do not Close it;
// the pool owns it. Calls made on it directly are not cancelled when Close
// gives up draining (those made through Pool helpers are): Close then waits
// for them.
func (l *Lease) Session() *mcp.ClientSession { return l.s.cs }

// SessionID returns the pool's own id for the leased session (ids start at 1
// and are never reused within a pool). MCP's session id is empty for stdio
// and stateless HTTP, so the pool keeps its own.
func (l *Lease) SessionID() uint64 { return l.s.id }

// Release returns the lease's room to the pool, where the longest waiter
// gets it first. It is safe to call more than once and on the zero Lease.
func (l *Lease) Release() {
	if l.p == nil {
		return
	}
	if o := l.p.obs.Load(); o != nil { // observe.go
		o.released(l)
	}
	l.p.release(l)
	*l = Lease{}
}
