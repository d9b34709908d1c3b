package mcpool

import "time"

// sessionLimit is how many calls the pool puts on one session before
// callers wait for room: between 1 and MaxCallsPerSession, adapted to what
// the server gains from concurrent calls.
//
// Why adapt: a server that handles calls concurrently (calls that wait on
// the network, a disk, a model) gains from every call multiplexed onto a
// session, up to MaxCallsPerSession. A server that is CPU-bound or handles
// one call at a time per session gains nothing from more than a call or two
// in flight per session; piling more on only moves the queue from the
// pool, where callers are served first come first served, into the server
// and the runtime, which serve them in no particular order: the same calls/s
// with several times the tail latency.
//
// How: the limit starts at one call per session (exclusive lending) and
// is judged in rounds of released leases, each at least 50 ms, four mean
// calls and twice the calls in flight long (shorter ones measure the machine's hiccups, or
// catch calls that started together half done). A round's figures are its
// calls/s and the mean time from Acquire to Release, waiting included.
//
//   - While callers wait for room with MaxSessions sessions connected or
//     connecting (more sessions come first), a probe round tries twice the limit; it
//     stays when calls/s rises, or the mean time falls (callers that come
//     at their own pace, whose calls/s no limit changes), by a quarter.
//   - Otherwise a probe round tries three quarters of what the sessions
//     carried; it stays when neither figure gets worse by a tenth: it
//     costs nothing and shortens the tail.
//   - A probe down that costs nothing, or up that pays by less than 60 %,
//     is checked: the next round runs at the old limit again, and the
//     probe stays only if it did as well against that round (a busy
//     machine's calls/s drift from round to round).
//   - A probe that pays is followed at once by the next in the same
//     direction (up: after a gain of 60 % or more, which only a server
//     with room to spare gives, straight to the limit at which the
//     sessions carry every caller, in flight or waiting, so that a cold
//     pool facing calls that wait settles within a second). A climb that
//     ends with every caller carried rests 16 rounds before the first
//     probe down. A probe that does not pay is undone, the direction turns, and the
//     next comes after four times as many rounds as the last (at most 128),
//     so a steady workload spends under 1 % of its calls probing and the
//     probes stay out of its 99th percentile. A round whose calls/s or mean
//     time is off by more than a factor of three from the last steady round
//     (the workload changed) brings the next probe forward. A kept probe
//     that undoes the last kept one (up, then down) is the machine's noise
//     around the limit the server needs: it counts as a failed one.
//   - Calls that run for minutes release nothing to judge: when callers
//     have waited with no lease released for 100 ms and twice the last
//     round's mean call, with no connect under way, the limit doubles at
//     once, so long calls never lack room the sessions have.
//
// Every field is guarded by the pool's mu; nothing here does I/O.
type sessionLimit struct {
	n, max int

	// The current round.
	start   time.Time
	done    int           // leases released in it
	waits   time.Duration // waits for room of the leases taken in it, summed
	busy    int           // calls in flight at each release, summed
	peak    int           // the most calls one session carried in it
	waited  bool          // a caller waited for room in it
	demand  int           // the most calls in flight and waiting at a release in it
	lastRel time.Time
	// sessions is how many sessions took calls at the last release.
	sessions int

	// Probing: base is the round rate (leases/s) before the probe under
	// way, 0 when none is, and baseHeld its mean lease time; prev the
	// limit to go back to.
	base     float64
	baseHeld time.Duration
	prev     int
	up       bool // the direction of the next probe
	// check: a probe up paid and this round runs at prev again, to tell
	// a server that gains from the room from a machine that got quieter
	// during the probe; probeN, probeRate and probeHeld are the probe's.
	check     bool
	probeN    int
	probeRate float64
	probeHeld time.Duration
	// The probe round's busiest session, whether callers waited in it,
	// and what its busiest moment needed: what the probe, if the check
	// keeps it, goes on from (the check round ran at the old limit).
	probePeak   int
	probeWaited bool
	probeNeed   int
	// lastKept is the direction of the last probe kept: 1 up, -1 down.
	lastKept int8
	// sure: the last probe up gained limitSureUp or more, so the next
	// goes to what the callers need rather than doubling the limit.
	sure    bool
	wait    int // rounds to go before the next probe
	backoff int // rounds between probes after a failed one

	// The last round without a probe, to notice a change of workload.
	steadyRate float64
	steadyHeld time.Duration

	// skipUntil: releases before it are not counted (a change of limit
	// takes a mean call to show).
	skipUntil time.Time

	// service is the mean time from lease to Release in the last round:
	// a round lasts at least four of them, so that calls that start
	// together and end together are counted whole.
	service time.Duration
}

// Probe thresholds: a smaller limit must keep this share of calls/s, a
// larger one must raise it by this factor.
const (
	limitKeepDown = 0.90
	limitKeepUp   = 1.25
	limitSureUp   = 1.6 // a probe up that gains this much needs no check round
	maxBackoff    = 128
	// climbRest is how many rounds a climb that ended with every caller
	// carried rests before the first probe down (and the least backoff
	// after it).
	climbRest = 16
)

// minRound is the shortest round: shorter ones measure the runtime's and
// the machine's hiccups (a collection, a descheduled thread) more than the
// server.
const minRound = 50 * time.Millisecond

// startLimit is the limit of a new pool: one call per session, as
// exclusive lending, so that a new pool never costs more than lending
// would; the first probe, a round after the sessions fill MaxSessions,
// shows whether a second call per session pays. (Below MaxSessions a
// caller may share a session with one other call rather than wait for a
// connect: see Pool.pickLocked.)
const startLimit = 1

// stallAfter is how long callers wait with no lease released (and twice
// the mean call, and no connect under way) before the limit doubles
// anyway. Long enough that a busy machine's pauses (a descheduled
// process, a collection) do not raise the limit of a CPU-bound server.
const stallAfter = 100 * time.Millisecond

func (l *sessionLimit) init(max int) {
	l.n, l.max, l.backoff, l.up = min(max, startLimit), max, 1, true
}

// leased notes a lease, after waiting for room for wait, on a session that
// now carries inFlight calls.
func (l *sessionLimit) leased(inFlight int, wait time.Duration) {
	if inFlight > l.peak {
		l.peak = inFlight
	}
	l.waits += wait
}

// released counts the end of a lease, with inFlight leases held across the
// pool (this one included) and waiting callers queued for room, and, at
// the end of a round, judges the probe under way or starts the next.
// sessions is how many sessions take calls. (Release serves waiters after
// it, so a limit that grew is used at once.)
func (l *sessionLimit) released(now time.Time, inFlight, waiting, sessions int) {
	l.lastRel, l.sessions = now, sessions
	if now.Before(l.skipUntil) {
		return // calls admitted under the limit before the change still end
	}
	if l.start.IsZero() {
		l.start, l.done, l.waits, l.busy, l.peak, l.demand = now, 0, 0, 0, 0, 0
		return
	}
	l.done++
	l.busy += inFlight
	l.demand = max(l.demand, inFlight+waiting)
	if l.done < max(8, 2*l.peak*sessions) || now.Sub(l.start) < max(minRound, 4*l.service) {
		return
	}
	n := l.n
	l.judge(now)
	if l.n != n {
		// The next round starts once the calls in flight at the change
		// have had a mean call's time to end: a round that straddles
		// the change measures the old limit as much as the new.
		l.skipUntil, l.start = now.Add(l.service), time.Time{}
	}
}

// judge ends a round at now: it judges the probe under way, or starts the
// next.
func (l *sessionLimit) judge(now time.Time) {
	// Little's law: the mean call lasts the mean calls in flight over
	// the rate at which they end.
	rate := float64(l.done) / now.Sub(l.start).Seconds()
	l.service = time.Duration(float64(l.busy) / float64(l.done) / rate * float64(time.Second))
	held := l.waits/time.Duration(l.done) + l.service
	peak, waited, need := l.peak, l.waited, l.need()
	l.start, l.done, l.waits, l.busy, l.peak, l.waited, l.demand = now, 0, 0, 0, 0, false, 0
	if l.check { // the round back at prev after a probe up that paid
		l.check, l.base, l.sure = false, 0, false
		up := l.probeN > l.n
		if up && paysUp(l.probeRate, l.probeHeld, rate, held) || !up && keepsDown(l.probeRate, l.probeHeld, rate, held) {
			l.n = l.probeN
			l.kept(up, l.probeRate, l.probeHeld, l.probePeak, l.probeWaited, l.probeNeed)
			return
		}
		l.backoff = min(4*l.backoff, maxBackoff)
		l.wait, l.up = l.backoff, !l.up
		return
	}
	if l.base > 0 { // judge the probe
		base, baseHeld, old := l.base, l.baseHeld, l.n
		l.base = 0
		down := old < l.prev && keepsDown(rate, held, base, baseHeld)
		up := old > l.prev && paysUp(rate, held, base, baseHeld)
		l.sure = up && rate >= limitSureUp*base
		if down || up && !l.sure {
			// Check it: one round back at prev. (A gain of
			// limitSureUp is the server's, not the machine's.)
			l.check, l.base = true, base
			l.probeN, l.probeRate, l.probeHeld = old, rate, held
			l.probePeak, l.probeWaited, l.probeNeed = peak, waited, need
			l.n = l.prev
			return
		}
		if !down && !up {
			l.n = l.prev
			l.backoff = min(4*l.backoff, maxBackoff)
			l.wait, l.up = l.backoff, !l.up
			return
		}
		// It paid: the next probe, in the same direction, starts now
		// from this round's figures.
		l.kept(up, rate, held, peak, waited, need)
		return
	}
	if peak > l.n {
		// Sessions carried more than the limit (a cold pool shares
		// sessions while it connects): not a round of this limit.
		return
	}
	if changed(rate, l.steadyRate) || changed(held.Seconds(), l.steadyHeld.Seconds()) {
		l.backoff, l.wait, l.lastKept = 1, 0, 0
	}
	l.steadyRate, l.steadyHeld = rate, held
	if l.wait > 0 {
		l.wait--
		return
	}
	l.probe(rate, held, peak, waited, need)
}

// need is the limit at which the sessions carry every call of the round's
// busiest moment, in flight or waiting.
func (l *sessionLimit) need() int {
	return (l.demand + l.sessions - 1) / max(1, l.sessions)
}

// kept follows a probe that paid (up or down): the next probe, in the same
// direction, starts at once from the round's figures; but when this one
// undid the last kept change, the two are the machine's noise around the
// limit the server needs, and the next probe waits as after a failed one.
// A climb that ends with every caller carried (nobody waited) rests: each
// of its steps paid by a quarter, checked, or by 60 %, which is the
// server's gain, not the machine's noise, and a probe down at once would
// only cost the callers a round of waiting.
func (l *sessionLimit) kept(up bool, rate float64, held time.Duration, peak int, waited bool, need int) {
	l.steadyRate, l.steadyHeld = rate, held // the level to notice a change of workload against
	dir := int8(-1)
	if up {
		dir = 1
	}
	if l.lastKept == -dir {
		l.lastKept = 0
		l.backoff = min(4*l.backoff, maxBackoff)
		l.wait = l.backoff
		return
	}
	// The backoff stays: only a change of workload resets it, so that
	// noise that keeps and undoes probes in turn backs off as well.
	l.lastKept = dir
	if up && !waited {
		l.backoff = max(l.backoff, climbRest)
		l.up, l.wait = false, l.backoff
		return
	}
	l.probe(rate, held, peak, waited, need)
}

// probe starts a probe from a round's figures: up while callers wait,
// down when the direction is down or nobody waited; neither when the
// limit can go neither way. A probe up doubles the limit; after one that
// gained limitSureUp it goes to what the round's busiest moment needed
// (need), if that is more: a server that gains so much from the room has
// more to gain, and climbing by doubling would take a round per step.
func (l *sessionLimit) probe(rate float64, held time.Duration, peak int, waited bool, need int) {
	switch {
	case l.up && waited && l.n < l.max:
		l.base, l.baseHeld, l.prev = rate, held, l.n
		next := 2 * l.n
		if l.sure {
			next = max(next, need)
		}
		l.n = min(l.max, next)
	case peak > 1 && (!l.up || !waited):
		l.base, l.baseHeld, l.prev = rate, held, l.n
		l.n = max(1, min(l.n, peak)*3/4)
		l.up = false
	default:
		l.up = !l.up
	}
}

// stalled doubles the limit when callers have waited with no lease
// released for stallAfter and twice the last round's mean call, and
// reports whether it did.
func (l *sessionLimit) stalled(now time.Time) bool {
	if l.n >= l.max || now.Sub(l.lastRel) < l.stallTime() {
		return false
	}
	l.n = min(l.max, 2*l.n)
	l.base, l.check = 0, false // whatever was probed, the sessions need the room
	l.skipUntil, l.start = now.Add(l.service), time.Time{}
	l.lastRel = now
	return true
}

// stallTime is how long callers must wait with no lease released for the
// limit to double.
func (l *sessionLimit) stallTime() time.Duration { return max(stallAfter, 2*l.service) }

// stallIn returns how long from now a stall could first be declared.
func (l *sessionLimit) stallIn(now time.Time) time.Duration {
	return max(time.Millisecond, l.lastRel.Add(l.stallTime()).Sub(now))
}

// paysUp reports whether a round at a higher limit (rate, held) beat one
// at the lower (baseRate, baseHeld): calls/s up, or the mean time from
// Acquire to Release down, by limitKeepUp.
func paysUp(rate float64, held time.Duration, baseRate float64, baseHeld time.Duration) bool {
	return rate >= limitKeepUp*baseRate || float64(held)*limitKeepUp <= float64(baseHeld)
}

// keepsDown reports whether a round at a lower limit (rate, held) did no
// worse than one at the higher (baseRate, baseHeld): neither calls/s nor
// the mean time from Acquire to Release worse by a tenth.
func keepsDown(rate float64, held time.Duration, baseRate float64, baseHeld time.Duration) bool {
	return rate >= limitKeepDown*baseRate && float64(held)*limitKeepDown <= float64(baseHeld)
}

// changed reports whether a figure moved by more than a factor of three from
// the steady one (none yet: no change).
func changed(now, steady float64) bool {
	return steady > 0 && (now > 3*steady || 3*now < steady)
}
