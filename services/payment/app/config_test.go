package app_test

import (
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/services/payment/app"
)

// A stub of the channels for pressure tests must stand for every live
// channel, and only those, each under a secret of its own: with any live
// channel's secret it could sign a real payment's notification on that
// channel, and with one secret for two, sign for one as the other.
func TestStubChannelsNeedSecretsOfTheirOwn(t *testing.T) {
	live := "alipay=5d0c2b9e4f7a41c3,wechat=9a8e6f1d2c3b4a5e"
	tests := []struct {
		name, stub, want string
	}{
		{"own secrets", "alipay=71c9e3a0b5d24f68,wechat=2e4f6a8c0b1d3f57", ""},
		{"its live secret", "alipay=5d0c2b9e4f7a41c3,wechat=2e4f6a8c0b1d3f57", "alipay has a live channel's secret"},
		{"another channel's live secret", "alipay=9a8e6f1d2c3b4a5e,wechat=2e4f6a8c0b1d3f57", "alipay has a live channel's secret"},
		{"one secret for two", "alipay=71c9e3a0b5d24f68,wechat=71c9e3a0b5d24f68", "alipay and wechat share a secret"},
		{"a channel missing", "alipay=71c9e3a0b5d24f68", "no stub of wechat"},
		{"an unknown channel", "alipay=71c9e3a0b5d24f68,wechat=2e4f6a8c0b1d3f57,paypal=0f1e2d3c4b5a6978", "paypal is not a channel"},
		{"no secrets", "", "FLASHSALE_STUB_CHANNELS is required"},
	}
	for _, tt := range tests {
		vars := map[string]string{
			"FLASHSALE_CHANNELS_URL": "https://channels.operator.net", "FLASHSALE_CHANNELS": live,
			"FLASHSALE_STUB_CHANNELS_URL": "http://stub.flashsale.svc:9301",
		}
		if tt.stub != "" {
			vars["FLASHSALE_STUB_CHANNELS"] = tt.stub
		}
		vars["FLASHSALE_POSTGRES_URL"] = app.DefaultPostgresURL // required outside development
		env := config.FromMap(vars)
		cfg := app.ConfigFromEnv(env)
		err := env.Err()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == "" && (cfg.StubChannelsURL == "" || len(cfg.StubChannels) != 2):
			t.Errorf("%s: stub %q with %d channels", tt.name, cfg.StubChannelsURL, len(cfg.StubChannels))
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}

// The channels' secrets outside development are the operator's own: a
// value that names no channel (separators only) is refused, not taken as
// unset, which would have fallen back to the development channels, whose
// secrets this repository prints.
func TestChannelsNameAtLeastOneChannel(t *testing.T) {
	for _, v := range []string{",", " , ", ",,,"} {
		for _, dev := range []bool{false, true} {
			vars := map[string]string{"FLASHSALE_CHANNELS_URL": "https://channels.operator.net", "FLASHSALE_CHANNELS": v}
			if dev {
				vars[config.DevVar] = "true"
			}
			vars["FLASHSALE_POSTGRES_URL"] = app.DefaultPostgresURL
			env := config.FromMap(vars)
			cfg := app.ConfigFromEnv(env)
			if err := env.Err(); err == nil || !strings.Contains(err.Error(), "names no channel") {
				t.Errorf("FLASHSALE_CHANNELS=%q (dev %v): %v with channels %v, want refused: names no channel", v, dev, err, cfg.Channels)
			}
		}
	}
}

// Outside development the channels' address may not be a placeholder
// (the prod overlay ships https://channels.flashsale.example.com): the
// service would start, look healthy and fail every payment. In
// development the simulator's address is anything.
func TestChannelsAddressIsNoPlaceholder(t *testing.T) {
	for _, tt := range []struct {
		url  string
		dev  bool
		want bool // refused
	}{
		{"https://channels.flashsale.example.com:443", false, true},
		{"https://pay.example.org", false, true},
		{"http://channels.test:9301", false, true},
		{"https://channels.operator.net", false, false},
		{"https://channels.flashsale.example.com:443", true, false},
	} {
		vars := map[string]string{"FLASHSALE_CHANNELS_URL": tt.url, "FLASHSALE_CHANNELS": "alipay=5d0c2b9e4f7a41c3", "FLASHSALE_POSTGRES_URL": app.DefaultPostgresURL}
		if tt.dev {
			vars[config.DevVar] = "true"
		}
		env := config.FromMap(vars)
		app.ConfigFromEnv(env)
		err := env.Err()
		if refused := err != nil && strings.Contains(err.Error(), "placeholder host"); refused != tt.want {
			t.Errorf("%s (dev %v): %v, want refused %v", tt.url, tt.dev, err, tt.want)
		}
	}
}
