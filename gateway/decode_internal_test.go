package gateway

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
)

// A body that cannot be read is refused without the reader's error,
// which names the connection's addresses (the gateway's own among them);
// the decoder's own errors still say what was wrong with the JSON. From a
// review (2026-12-08): a body trickled past the read timeout was answered
// "read tcp 10.0.3.7:8080->…: i/o timeout".
func TestDecodeErrorNamesNoAddress(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 3, 7), Port: 8080}
	read := &net.OpError{Op: "read", Net: "tcp", Source: addr, Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 9, 9), Port: 50000}, Err: os.ErrDeadlineExceeded}
	var ge *Error
	if err := decodeError(read); !errors.As(err, &ge) || strings.Contains(ge.Message, "10.0.") || ge.Message == "" {
		t.Errorf("a read that timed out: %v, want INVALID_ARGUMENT naming no address", err)
	}
	var v struct{ A int }
	d := json.NewDecoder(strings.NewReader(`{"b":1}`))
	d.DisallowUnknownFields()
	if err := decodeError(d.Decode(&v)); !errors.As(err, &ge) || !strings.Contains(ge.Message, `unknown field "b"`) {
		t.Errorf("an unknown field: %v, want the decoder's message naming it", err)
	}
}
