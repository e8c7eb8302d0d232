package loadtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/loadtest/client"
)

// closedPort returns the base URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestReachGatewayHintsWhenNothingAnswers(t *testing.T) {
	target := closedPort(t)
	err := ReachGateway(context.Background(), client.New(target, 1), target)
	if err == nil {
		t.Fatalf("no error from %s, where nothing listens", target)
	}
	msg := err.Error()
	for _, want := range []string{"the gateway at " + target + " is not answering", "connection refused", "make up", "docker compose up"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "dial tcp") || strings.Contains(msg, "\n") {
		t.Errorf("%q is not one line free of the dial error stack", msg)
	}
}

// A gateway that answers, even with an error, is reached.
func TestReachGatewayAcceptsAnyAnswer(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				t.Errorf("asked %s, want /healthz", r.URL.Path)
			}
			w.WriteHeader(status)
		}))
		if err := ReachGateway(context.Background(), client.New(srv.URL, 1), srv.URL); err != nil {
			t.Errorf("status %d: %v", status, err)
		}
		srv.Close()
	}
}
