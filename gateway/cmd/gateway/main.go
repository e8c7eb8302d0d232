// Command gateway serves the platform's public HTTP API. Settings come
// from FLASHSALE_* environment variables; see app.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/serve"
)

func main() {
	serve.Main("gateway", app.ConfigFromEnv, func(ctx context.Context, cfg app.Config, log *slog.Logger) error {
		cfg.Logger = log
		return app.Run(ctx, cfg)
	})
}
