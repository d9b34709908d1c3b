package mcpool

// UnsubscribeWaiting reports whether an Unsubscribe of uri is waiting for
// that URI's subscribe in flight (tests of that path wait for this state).
func UnsubscribeWaiting(p *Pool, uri string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sub := p.subs[uri]
	return sub != nil && sub.busy && sub.ended
}
