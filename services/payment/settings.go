package payment

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
// key that does not parse keeps the channel's setting in force (inForce,
// when it has one) and is reported in the error, so one typo never
// switches a channel the operator did not mean to. A setting names both
// its fields and no other: {"weight":50} would otherwise switch the
// channel off, and {"weight":50,"enable":true} too.
func ParseChannelSettings(kv map[string]string, inForce map[string]ChannelSetting) (map[string]ChannelSetting, error) {
	out := make(map[string]ChannelSetting, len(kv))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(kv)) {
		set, err := parseChannelSetting(kv[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%s=%q: %w", ChannelSettingsPrefix, name, kv[name], err))
			if prev, ok := inForce[name]; ok {
				out[name] = prev
			}
			continue
		}
		out[name] = set
	}
	return out, errors.Join(errs...)
}

// parseChannelSetting decodes one setting strictly: both fields, no
// other, nothing after, within its range.
func parseChannelSetting(v string) (ChannelSetting, error) {
	var raw struct {
		Weight  *int64 `json:"weight"`
		Enabled *bool  `json:"enabled"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return ChannelSetting{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return ChannelSetting{}, fmt.Errorf("%w: data after the setting", ErrInvalid)
	}
	if raw.Weight == nil || raw.Enabled == nil {
		return ChannelSetting{}, fmt.Errorf(`%w: want {"weight":W,"enabled":true|false}, both named`, ErrInvalid)
	}
	set := ChannelSetting{Weight: *raw.Weight, Enabled: *raw.Enabled}
	return set, set.Validate()
}
