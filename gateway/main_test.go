package gateway_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(gateStdioEnv) == "1" {
		runGateStdio() // forward_test.go: the test binary as a stdio server
	}
	goleak.VerifyTestMain(m)
}
