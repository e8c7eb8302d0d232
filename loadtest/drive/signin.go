package drive

import (
	"context"
	"fmt"
	"sync"

	"github.com/flashsale/flashsale/loadtest/client"
)

// SignIn gets dev tokens for n users with ids from firstID on, 32 requests
// at a time. Like any polite client it waits out a 429's Retry-After
// (the gateway rate-limits the token route too) and tries again.
func SignIn(ctx context.Context, gateway *client.Client, firstID int64, n int) ([]client.User, error) {
	users := make([]client.User, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id := firstID + int64(i)
			tok, err := client.WithRetryAfter(ctx, func() (string, error) { return gateway.DevToken(ctx, id, "user") })
			if err != nil {
				errs <- fmt.Errorf("token for user %d: %w", id, err)
				return
			}
			users[i] = client.User{ID: id, Token: tok}
		})
	}
	wg.Wait()
	close(errs)
	return users, <-errs
}
