package loadtest

import (
	"strings"

	"github.com/flashsale/flashsale/platform/config"
)

// Env is what the loadtest command reads from its environment.
type Env struct {
	// OrdersURL is the orders database the audit reads orders from
	// (FLASHSALE_AUDIT_POSTGRES_URL); empty reads them through the API.
	OrdersURL string
	// PaymentsURL is the payment database the audit reads payments from
	// (FLASHSALE_AUDIT_PAYMENT_POSTGRES_URL); empty reads them through
	// the API.
	PaymentsURL string
	// SimulatorURL is the channel simulator's admin URL
	// (FLASHSALE_CHANNELSIM_URL); without it slow and failing faults are
	// skipped.
	SimulatorURL string
	// BenchRedisAddr is a Redis whose redis-benchmark ceiling is measured
	// (FLASHSALE_BENCH_REDIS_ADDR); empty measures none.
	BenchRedisAddr string
}

// EnvFromConfig reads the loadtest command's environment.
func EnvFromConfig(env *config.Env) Env {
	return Env{
		OrdersURL:      env.String("FLASHSALE_AUDIT_POSTGRES_URL", ""),
		PaymentsURL:    env.String("FLASHSALE_AUDIT_PAYMENT_POSTGRES_URL", ""),
		SimulatorURL:   strings.TrimRight(env.String("FLASHSALE_CHANNELSIM_URL", ""), "/"),
		BenchRedisAddr: env.String("FLASHSALE_BENCH_REDIS_ADDR", ""),
	}
}
