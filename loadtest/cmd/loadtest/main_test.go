package main

import (
	"context"
	"net"
	"strings"
	"testing"
)

// make loadtest against a port nothing listens on ends in the one-line
// hint, before any replay output or report.
func TestRunWithoutGatewaySaysHowToStartOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ok, err := run(context.Background(), "../../scenarios/double11.yaml", target, out, false)
	if ok || err == nil {
		t.Fatalf("run against %s: ok=%v err=%v, want the hint", target, ok, err)
	}
	if want := "the gateway at " + target + " is not answering"; !strings.Contains(err.Error(), want) {
		t.Errorf("%q does not say %q", err, want)
	}
}
