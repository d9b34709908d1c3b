package drain

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDrainWaitsForCountedCalls(t *testing.T) {
	var c Counter
	if !c.Enter() || !c.Enter() {
		t.Fatal("Enter refused before Drain")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Drain(context.Background())
		done <- err
	}()
	// Enter refuses once Drain has begun (it may not have yet: wait for it).
	for c.Enter() {
		c.Exit()
		time.Sleep(time.Millisecond)
	}
	c.Exit()
	select {
	case err := <-done:
		t.Fatalf("Drain returned %v with a call still counted", err)
	default:
	}
	c.Exit()
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if n, err := c.Drain(context.Background()); n != 0 || err != nil {
		t.Fatalf("Drain again = %d, %v; want 0, nil", n, err)
	}
}

func TestDrainIdleReturnsAtOnce(t *testing.T) {
	var c Counter
	if n, err := c.Drain(context.Background()); n != 0 || err != nil {
		t.Fatalf("Drain = %d, %v; want 0, nil", n, err)
	}
	if c.Enter() {
		t.Fatal("Enter counted a call after Drain")
	}
}

func TestDrainDeadlineSaysHowMany(t *testing.T) {
	var c Counter
	c.Enter()
	c.Enter()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := c.Drain(ctx)
	if n != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain = %d, %v; want 2, context.Canceled", n, err)
	}
	c.Exit()
	c.Exit()
	if n, err := c.Drain(context.Background()); n != 0 || err != nil {
		t.Fatalf("Drain after the calls ended = %d, %v; want 0, nil", n, err)
	}
}
