package main

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// A run shorter than progressDelay shows no progress: a line that appears
// and vanishes at once is only noise.
const (
	progressDelay = 1500 * time.Millisecond
	progressEvery = 250 * time.Millisecond
)

// progress keeps "\r  mode: n/N calls" up to date on stderr while a run
// lasts, and ends the line when it stops. Only its own goroutine writes.
type progress struct {
	w     io.Writer
	mode  string
	total int
	done  atomic.Int64
	quit  chan struct{}
	ended chan struct{}
}

func startProgress(w io.Writer, mode string, total int) *progress {
	p := &progress{w: w, mode: mode, total: total, quit: make(chan struct{}), ended: make(chan struct{})}
	go p.loop()
	return p
}

// add counts one finished call.
func (p *progress) add() { p.done.Add(1) }

// stop ends the line, if one was started, and returns once nothing more
// will be written.
func (p *progress) stop() {
	close(p.quit)
	<-p.ended
}

func (p *progress) loop() {
	defer close(p.ended)
	delay := time.NewTimer(progressDelay)
	defer delay.Stop()
	select {
	case <-p.quit:
		return
	case <-delay.C:
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		fmt.Fprintf(p.w, "\r  %s: %d/%d calls", p.mode, p.done.Load(), p.total)
		select {
		case <-p.quit:
			fmt.Fprintf(p.w, "\r  %s: %d/%d calls\n", p.mode, p.done.Load(), p.total)
			return
		case <-tick.C:
		}
	}
}
