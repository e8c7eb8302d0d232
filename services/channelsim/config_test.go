package channelsim_test

import (
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/services/channelsim"
)

// The simulator moves no money, so it runs only with the development
// switch: a production deployment that kept it would "pay" every order
// for nothing. With an operator's own channel secrets but no switch it
// still refuses.
func TestRunsOnlyInDevelopment(t *testing.T) {
	own := map[string]string{"FLASHSALE_CHANNELS": "alipay=4f9c1e0d7b2a4c8e9f6a3b5d1c7e2f0a"}
	env := config.FromMap(own)
	channelsim.ConfigFromEnv(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "runs only in development") {
		t.Errorf("without %s: %v, want a refusal", config.DevVar, err)
	}
	env = config.FromMap(map[string]string{config.DevVar: "true"})
	channelsim.ConfigFromEnv(env)
	if err := env.Err(); err != nil {
		t.Errorf("in development: %v", err)
	}
	// A stub for pressure tests runs beside live channels, outside
	// development, with secrets of its own, never printed ones.
	own["FLASHSALE_CHANNELSIM_STUB"] = "true"
	env = config.FromMap(own)
	if cfg := channelsim.ConfigFromEnv(env); env.Err() != nil || !cfg.Stub {
		t.Errorf("a stub outside development: %v (stub %v), want it to run", env.Err(), cfg.Stub)
	}
	env = config.FromMap(map[string]string{"FLASHSALE_CHANNELSIM_STUB": "true", "FLASHSALE_CHANNELS": "alipay=alipay-dev-secret"})
	channelsim.ConfigFromEnv(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "public placeholder") {
		t.Errorf("a stub outside development with a printed secret: %v, want a refusal", err)
	}
}
