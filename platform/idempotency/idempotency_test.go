package idempotency_test

import (
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/idempotency"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"a uuid", "3f2b8c1e-7d4a-4c1b-9e8f-0a1b2c3d4e5f", true},
		{"one character", "k", true},
		{"spaces and punctuation", "refund 1: {a/b}~", true},
		{"the longest", strings.Repeat("k", idempotency.MaxKeyLen), true},
		{"empty", "", false},
		{"one too long", strings.Repeat("k", idempotency.MaxKeyLen+1), false},
		{"a tab", "a\tb", false},
		{"a newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"not UTF-8", "r\xff1", false},
		{"UTF-8 beyond ASCII", "clé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := idempotency.CheckKey(tt.key); (err == nil) != tt.ok {
				t.Errorf("CheckKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
			}
		})
	}
}
