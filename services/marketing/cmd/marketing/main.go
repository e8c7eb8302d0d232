// Command marketing runs the marketing service (promotions, coupons and
// the pricing of carts).
// Settings come from FLASHSALE_* environment variables; see app.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/marketing/app"
)

func main() {
	serve.Main("marketing", app.ConfigFromEnv, func(ctx context.Context, cfg app.Config, log *slog.Logger) error {
		cfg.Logger = log
		return app.Run(ctx, cfg)
	})
}
