package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mcpool/mcpool"
)

// runVersion prints the build: mcpool's version and VCS revision, the Go
// version and the go-sdk version, on one line.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: mcpool version\n\nPrint mcpool's version (with the VCS revision it was built from, when\nrecorded), the Go version and the go-sdk version. \"mcpool --version\" is the same.\n")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return usageErrorf("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("version takes no arguments")
	}
	fmt.Fprintln(stdout, mcpool.BuildInfo())
	return nil
}
