package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flashsale/flashsale/loadtest/client"
)

// reachTimeout bounds the one request that tells whether a gateway
// answers at all.
const reachTimeout = 5 * time.Second

// ReachGateway asks the gateway at target for /healthz once. When nothing
// answers there (refused, unknown host, no answer in time) it returns a
// one-line error that says so and how to start a gateway, instead of the
// dial errors the replay's first request would end in; any HTTP answer,
// even an error status, is a gateway that answers.
func ReachGateway(ctx context.Context, c *client.Client, target string) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	_, err := c.Do(ctx, http.MethodGet, "/healthz", "", nil, nil, nil)
	var answered *client.APIError
	if err == nil || errors.As(err, &answered) {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err() // interrupted, not unreachable
	}
	return fmt.Errorf("the gateway at %s is not answering (%v): start one with `make up` (or `docker compose up -d`) and run again, or set TARGET to a running one",
		target, innermost(err))
}

// innermost returns the error at the end of err's chain, such as
// "connection refused" under the URL and dial errors around it.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
