// Command order runs the order service: flash-sale order placement over
// gRPC and the consumer that writes placed orders to Postgres. Settings
// come from FLASHSALE_* environment variables; see app.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/order/app"
)

func main() {
	serve.Main("order", app.ConfigFromEnv, func(ctx context.Context, cfg app.Config, log *slog.Logger) error {
		cfg.Logger = log
		return app.Run(ctx, cfg)
	})
}
