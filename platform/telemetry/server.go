package telemetry

import (
	"context"
	"net/http"
	"time"
)

// The timeouts of every HTTP server the platform runs (NewServer).
const (
	// readHeaderTimeout bounds reading a request's headers, so a client
	// that trickles them (slowloris) is cut off instead of holding a
	// connection and its goroutine for good.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds reading a whole request, body included: the
	// bodies are small JSON.
	readTimeout = 15 * time.Second
	// writeTimeout bounds a response from the end of its request's
	// headers: far beyond any handler, whose downstream calls are bounded
	// in seconds. A stream outlives it by StreamDeadlines.
	writeTimeout = 30 * time.Second
	// idleTimeout bounds how long a kept-alive connection waits for its
	// next request.
	idleTimeout = 2 * time.Minute
)

// NewServer returns an HTTP server of h with the platform's timeouts.
// Every HTTP server is made by it, so none is left without them
// (deploy/check TestEveryHTTPServerIsMadeByNewServer holds it).
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
}

// StreamDeadlines lets a long-lived response (Server-Sent Events) on a
// server of NewServer outlive the server's read and write timeouts: it
// lifts the read deadline (a stream reads nothing more) and gives the
// response writeTimeout from now to write. Call it before each write, so
// a client that stops reading is still dropped.
func StreamDeadlines(rc *http.ResponseController) error {
	return extend(rc, writeTimeout)
}

// extend lifts rc's read deadline and gives its response d from now to be
// written. Deadlines of the connection are on the wall clock, whatever
// clock the handler's logic runs on.
func extend(rc *http.ResponseController, d time.Duration) error {
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	return rc.SetWriteDeadline(time.Now().Add(d))
}

// answerMargin is the time a long request keeps, after its budget, to
// write its answer.
const answerMargin = 5 * time.Second

// LongRequest lets one request on a server of NewServer work for up to
// budget, past the server's read and write timeouts (an operator's
// rebuild of every fenced sale may take minutes). Without it the work
// goes on but its answer is dropped at writeTimeout: the client sees the
// connection closed and cannot tell success from failure. It lifts the
// read deadline, gives the response budget and answerMargin to be
// written, and returns the request's context bounded by budget, so the
// handler gives up in time to say so. Where the connection's deadlines
// cannot be set (a middleware's ResponseWriter without Unwrap, a unit
// test's recorder) it says so in err, and only the context's bound
// applies: the handler should log it, since its answer then dies at
// writeTimeout again.
func LongRequest(w http.ResponseWriter, r *http.Request, budget time.Duration) (ctx context.Context, cancel context.CancelFunc, err error) {
	err = extend(http.NewResponseController(w), budget+answerMargin)
	ctx, cancel = context.WithTimeout(r.Context(), budget)
	return ctx, cancel, err
}
