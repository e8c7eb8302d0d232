package telemetry

import (
	"net/http"
	"time"
)

// NewClient returns an HTTP client whose calls are bounded by timeout and
// which keeps up to conns idle connections to each host it calls, so up
// to conns concurrent calls reuse their connections.
//
// A client without a transport of its own shares http.DefaultTransport,
// which keeps two idle connections per host: under a spike every call
// past the second concurrent one dials a connection and closes it after,
// a TCP handshake (and, to a real payment channel, a TLS one) per call,
// on both ends. Every HTTP client of the repository is made here or
// names its transport (deploy/check TestEveryHTTPClientNamesItsPool).
func NewClient(timeout time.Duration, conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = max(tr.MaxIdleConns, conns) // across hosts: 100 or more
	return &http.Client{Transport: tr, Timeout: timeout}
}
