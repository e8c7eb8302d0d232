// Command channelsim serves simulated payment channels (alipay, wechat,
// unionpay) for the payment service to talk to. Settings come from
// FLASHSALE_* environment variables; see channelsim.ConfigFromEnv.
package main

import (
	"context"
	"log/slog"

	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/services/channelsim"
)

func main() {
	serve.Main("channelsim", channelsim.ConfigFromEnv, func(ctx context.Context, cfg channelsim.ServerConfig, log *slog.Logger) error {
		cfg.Logger = log
		return channelsim.Run(ctx, cfg)
	})
}
