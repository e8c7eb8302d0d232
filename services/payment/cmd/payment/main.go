// Command payment takes payments of orders through the payment channels.
// Settings come from FLASHSALE_* environment variables; see
// app.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/payment/app"
)

func main() {
	serve.Main("payment", app.ConfigFromEnv, func(ctx context.Context, cfg app.Config, log *slog.Logger) error {
		cfg.Logger = log
		return app.Run(ctx, cfg)
	})
}
