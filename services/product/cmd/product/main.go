// Command product runs the catalog service (products and flash-sale
// activities).
// Settings come from FLASHSALE_* environment variables; see app.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/product/app"
)

func main() {
	serve.Main("product", app.ConfigFromEnv, func(ctx context.Context, cfg app.Config, log *slog.Logger) error {
		cfg.Logger = log
		return app.Run(ctx, cfg)
	})
}
