package postgres

import (
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/config"
)

func TestPoolSizeRefusesOutOfRangeBeforeNarrowing(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int32
		bad   bool
	}{
		{"", 20, false},
		{"1", 1, false},
		{"1000", 1000, false},
		{"0", 0, true},
		{"1001", 0, true},
		// 2^32+1 would narrow to 1, a valid-looking pool.
		{"4294967297", 0, true},
	} {
		m := map[string]string{}
		if tc.value != "" {
			m["FLASHSALE_POSTGRES_MAX_CONNS"] = tc.value
		}
		env := config.FromMap(m)
		got := PoolSize(env, 20)
		err := env.Err()
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "FLASHSALE_POSTGRES_MAX_CONNS") {
				t.Errorf("%q: err = %v, want the setting named", tc.value, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: PoolSize = %d, %v; want %d", tc.value, got, err, tc.want)
		}
	}
}
