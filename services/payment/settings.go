package payment

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// ChannelSetting is what an operator sets of a channel's routing: its
// weight and whether it is used. Every replica of the service must route
// alike, so a setting is kept in the config centre (Consul KV, one key per
// channel under ChannelSettingsPrefix) and each replica follows it
// (Router.Apply); without a config centre it lives in the one process.
type ChannelSetting struct {
	Weight  int64 `json:"weight"`
	Enabled bool  `json:"enabled"`
}

// ChannelSettingsPrefix is where the channels' settings live in the
// config centre: ChannelSettingsPrefix + channel name, a JSON
// ChannelSetting such as {"weight":50,"enabled":true}.
const ChannelSettingsPrefix = "flashsale/payment/channels/"

// MaxWeight bounds a channel's weight.
const MaxWeight = 1_000_000

// Validate checks the setting's range.
func (s ChannelSetting) Validate() error {
	if s.Weight < 0 || s.Weight > MaxWeight {
		return fmt.Errorf("%w: weight %d outside 0..%d", ErrInvalid, s.Weight, MaxWeight)
	}
	return nil
}

// Encode is the setting as stored in the config centre.
func (s ChannelSetting) Encode() string {
	b, _ := json.Marshal(s) // two plain fields always marshal
	return string(b)
}

// ParseChannelSettings reads the config centre's keys under
// ChannelSettingsPrefix (the prefix cut off): channel name → setting. A
// key that does not parse is left out and reported in the error, so one
// typo never switches a channel the operator did not mean to.
func ParseChannelSettings(kv map[string]string) (map[string]ChannelSetting, error) {
	out := make(map[string]ChannelSetting, len(kv))
	var errs []error
	names := make([]string, 0, len(kv))
	for name := range kv {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var s ChannelSetting
		if err := json.Unmarshal([]byte(kv[name]), &s); err != nil {
			errs = append(errs, fmt.Errorf("%s%s=%q: %v", ChannelSettingsPrefix, name, kv[name], err))
			continue
		}
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", ChannelSettingsPrefix, name, err))
			continue
		}
		out[name] = s
	}
	return out, errors.Join(errs...)
}
