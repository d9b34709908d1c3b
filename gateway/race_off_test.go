//go:build !race

package gateway_test

// raceSlack scales the time bounds of tests that assert a latency (see
// race_on_test.go).
const raceSlack = 1
