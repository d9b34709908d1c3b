package mcpool

import (
	"math"
	"testing"
	"time"
)

// server models what a server gives for a number of calls in flight per
// session: the rate at which calls complete (per second), their mean time
// from Acquire to Release, and the part of it the call ran.
type server func(perSession int) (rate float64, held, service time.Duration)

// feed runs n releases against l with sessions sessions and callers
// closed-loop callers (each calls again as soon as its call returns), and
// returns how many of them ran with the limit at or above atLeast.
func feed(l *sessionLimit, now *time.Time, sessions, callers, n int, srv server, atLeast int) (above int) {
	for range n {
		per := min(l.n, (callers+sessions-1)/sessions)
		rate, held, service := srv(per)
		l.leased(per, held-service)
		if callers > per*sessions {
			l.waited = true
		}
		*now = now.Add(time.Duration(float64(time.Second) / rate))
		l.released(*now, int(rate*service.Seconds()+0.5), max(0, callers-per*sessions), sessions)
		if l.n >= atLeast {
			above++
		}
	}
	return above
}

// closedLoop is a server whose calls take latency(perSession); with callers
// closed-loop callers, Little's law gives the rate.
func closedLoop(sessions, callers int, latency func(per int) time.Duration) server {
	return func(per int) (float64, time.Duration, time.Duration) {
		inFlight := min(callers, per*sessions)
		lat := latency(per)
		rate := float64(inFlight) / lat.Seconds()
		return rate, time.Duration(float64(callers) / rate * float64(time.Second)), lat
	}
}

func TestSessionLimitAdapts(t *testing.T) {
	const sessions = 4
	// One call at a time per session, 1 ms each: more in flight only
	// queues inside the server.
	serial := closedLoop(sessions, 32, func(per int) time.Duration { return time.Duration(per) * time.Millisecond })
	// Calls that wait 50 ms on something else: every call in flight pays.
	waiting := closedLoop(sessions, 64, func(int) time.Duration { return 50 * time.Millisecond })

	t.Run("serial server: the limit falls to one call per session", func(t *testing.T) {
		var l sessionLimit
		l.init(32)
		l.n = 32 // as if calls that wait had raised it
		now := time.Unix(0, 0)
		feed(&l, &now, sessions, 32, 5000, serial, 0)
		if l.n != 1 {
			t.Fatalf("limit %d after 5000 calls, want 1", l.n)
		}
		// And stays there: probes up do not pay.
		if above := feed(&l, &now, sessions, 32, 20000, serial, 2); above > 2000 {
			t.Errorf("limit above 1 for %d of 20000 calls, want probes only now and then", above)
		}
	})
	t.Run("calls that wait: the limit carries every caller", func(t *testing.T) {
		var l sessionLimit
		l.init(32)
		now := time.Unix(0, 0)
		if above := feed(&l, &now, sessions, 64, 20000, waiting, 16); above < 19000 {
			t.Errorf("limit carried all 64 callers for %d of 20000 calls, want probes only now and then", above)
		}
	})
	t.Run("calls that wait, from a new pool: the limit settles within a second", func(t *testing.T) {
		// A cold pool starts at one call per session; 64 callers of a
		// 50 ms tool need 16 per session on 4 sessions.
		var l sessionLimit
		l.init(32)
		start := time.Unix(0, 0)
		now := start
		var reached time.Duration = -1
		var below, away time.Duration // time below 16 after reaching it; the current stretch
		for now.Sub(start) < time.Minute {
			before := now
			feed(&l, &now, sessions, 64, 1, waiting, 0)
			switch {
			case l.n >= 16 && reached < 0:
				reached = now.Sub(start)
			case l.n < 16 && reached >= 0:
				below += now.Sub(before)
				away += now.Sub(before)
				if away > 300*time.Millisecond {
					t.Fatalf("at %v the limit had been at %d for %v: a probe down lasts one round (about 250 ms here)", now.Sub(start), l.n, away)
				}
			default:
				away = 0
			}
		}
		if reached < 0 || reached > time.Second {
			t.Fatalf("the limit reached 16 after %v, want within 1s", reached)
		}
		if below > time.Minute/50 {
			t.Errorf("the limit was below 16 for %v of a minute after it settled, want under 2%% (probes down now and then)", below)
		}
	})
	t.Run("the workload changes: the limit grows back", func(t *testing.T) {
		var l sessionLimit
		l.init(32)
		now := time.Unix(0, 0)
		feed(&l, &now, sessions, 32, 5000, serial, 0)
		if l.n != 1 {
			t.Fatalf("limit %d after the serial phase, want 1", l.n)
		}
		n := 0
		for l.n < 16 {
			if n++; n > 5000 {
				t.Fatalf("limit %d after 5000 calls that wait, want 16 (64 callers on 4 sessions)", l.n)
			}
			feed(&l, &now, sessions, 64, 1, waiting, 0)
		}
	})
	t.Run("callers at their own pace: the limit keeps them from queueing", func(t *testing.T) {
		// 500 calls/s arrive whatever the pool does; each takes 50 ms
		// and queues for room as the sessions fill up.
		open := func(per int) (float64, time.Duration) {
			capacity := float64(per*sessions) / 0.05
			if rho := 500 / capacity; rho < 1 {
				return 500, time.Duration(float64(50*time.Millisecond) / (1 - rho))
			}
			return capacity, 10 * time.Second
		}
		var l sessionLimit
		l.init(32)
		now := time.Unix(0, 0)
		for range 20000 {
			// Calls in flight per session: what arrives during a call's
			// time, as far as the limit lets in; the rest queue.
			rate, held := open(l.n)
			per := min(l.n, int(math.Ceil(500*held.Seconds()/sessions)))
			l.leased(per, held-50*time.Millisecond)
			l.waited = l.waited || per == l.n
			now = now.Add(time.Duration(float64(time.Second) / rate))
			l.released(now, int(rate*0.05+0.5), 0, sessions)
		}
		if capacity := float64(l.n*sessions) / 0.05; capacity < 2*500 {
			t.Errorf("limit %d: room for %.0f calls/s against 500 arriving, want at least twice that", l.n, capacity)
		}
	})
}

func TestSessionLimitStall(t *testing.T) {
	var l sessionLimit
	l.init(32)
	l.n = 2
	now := time.Unix(100, 0)
	l.lastRel = now
	if l.stalled(now.Add(stallAfter / 2)) {
		t.Fatal("the limit grew before stallAfter passed")
	}
	if !l.stalled(now.Add(stallAfter)) || l.n != 4 {
		t.Fatalf("limit %d after a stall, want 4", l.n)
	}
	for l.stalled(now.Add(time.Hour)) {
		now = now.Add(time.Hour)
	}
	if l.n != 32 {
		t.Fatalf("limit %d after stalls, want MaxCallsPerSession (32)", l.n)
	}
}
