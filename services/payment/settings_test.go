package payment_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/flashsale/flashsale/services/payment"
)

// A channel's setting names both its fields and no other, and a key that
// does not parse keeps the setting in force: a typo never switches a
// channel the operator did not mean to (before, {"weight":50} switched
// the channel off, and an unreadable key turned a channel switched off
// back on at the default weight).
func TestParseChannelSettings(t *testing.T) {
	inForce := map[string]payment.ChannelSetting{
		"alipay": {Weight: 0, Enabled: false}, "wechat": {Weight: 70, Enabled: true}, "unionpay": {Weight: 30, Enabled: true},
	}
	tests := []struct {
		name    string
		kv      map[string]string
		want    map[string]payment.ChannelSetting
		wantErr bool
	}{
		{"good settings", map[string]string{"alipay": `{"weight":50,"enabled":true}`, "wechat": payment.ChannelSetting{Weight: 5}.Encode()},
			map[string]payment.ChannelSetting{"alipay": {Weight: 50, Enabled: true}, "wechat": {Weight: 5}}, false},
		{"a field missing", map[string]string{"alipay": `{"weight":50}`}, map[string]payment.ChannelSetting{"alipay": inForce["alipay"]}, true},
		{"a misspelt field", map[string]string{"wechat": `{"weight":50,"enable":true}`}, map[string]payment.ChannelSetting{"wechat": inForce["wechat"]}, true},
		{"not JSON", map[string]string{"alipay": `weight=50`}, map[string]payment.ChannelSetting{"alipay": inForce["alipay"]}, true},
		{"data after it", map[string]string{"alipay": `{"weight":5,"enabled":true} {}`}, map[string]payment.ChannelSetting{"alipay": inForce["alipay"]}, true},
		{"a weight out of range", map[string]string{"unionpay": `{"weight":-1,"enabled":true}`}, map[string]payment.ChannelSetting{"unionpay": inForce["unionpay"]}, true},
		{"a bad key of a channel with no setting in force", map[string]string{"paypal": `{}`}, map[string]payment.ChannelSetting{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := payment.ParseChannelSettings(tt.kv, inForce)
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, payment.ErrInvalid)) {
				t.Errorf("err = %v, want an ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

// The settings in force are what Apply set, the defaults for the rest.
func TestRouterSettingsAreTheOnesApplied(t *testing.T) {
	r := MustRouter(t)
	if err := r.Apply(map[string]payment.ChannelSetting{"alipay": {Weight: 0}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]payment.ChannelSetting{"alipay": {Weight: 0},
		"wechat": {Weight: payment.DefaultWeight, Enabled: true}, "unionpay": {Weight: payment.DefaultWeight, Enabled: true}}
	if got := r.Settings(); !maps.Equal(got, want) {
		t.Fatalf("settings %v, want %v", got, want)
	}
}
