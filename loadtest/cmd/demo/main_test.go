package main

import (
	"testing"
	"time"
)

func TestCPULine(t *testing.T) {
	parts := []cpuPart{{"platform process", 82 * time.Second}, {"redis-server", 16 * time.Second}, {"postgres", 5 * time.Second}}
	for _, tc := range []struct {
		name  string
		parts []cpuPart
		buys  int
		want  string
	}{
		{"every part, per buy", parts, 200_000,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores), redis-server 16.0 s (0.40), postgres 5.0 s (0.12); per answered buy 410 µs + 80 µs + 25 µs = 515 µs"},
		{"no buy answered", parts, 0,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores), redis-server 16.0 s (0.40), postgres 5.0 s (0.12)"},
		{"the process alone", parts[:1], 200_000,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores); per answered buy 410 µs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuLine(40*time.Second, tc.parts, tc.buys); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
