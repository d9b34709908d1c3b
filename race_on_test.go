//go:build race

package mcpool_test

// raceDetector is true under -race, whose instrumentation makes scanning
// large answers several times slower.
const raceDetector = true
