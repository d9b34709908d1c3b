//go:build race

package gateway_test

// raceSlack scales the time bounds of tests that assert a latency: the race
// detector makes the gateway and its upstream servers several times slower.
const raceSlack = 5
