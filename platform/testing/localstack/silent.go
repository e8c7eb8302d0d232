package localstack

import (
	"net"
	"testing"
)

// MustSilentListener returns a listener that takes every connection and
// never answers, as a host that went silent (a blackhole behind a live
// route): a client's dial succeeds, and its request waits for an answer
// that never comes. It and its connections close when the test ends.
func MustSilentListener(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		<-done
	})
	return l
}
