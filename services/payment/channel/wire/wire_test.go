package wire_test

import (
	"strings"
	"testing"

	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

func TestVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"trade_no":"1"}`)
	good := wire.Sign(secret, body)
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		sig    string
		want   bool
	}{
		{"signed", secret, body, good, true},
		{"other body", secret, []byte(`{"trade_no":"2"}`), good, false},
		{"other secret", []byte("other"), body, good, false},
		{"empty signature", secret, body, "", false},
		{"not hex", secret, body, "zz" + good[2:], false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"no secret", nil, body, wire.Sign(nil, body), false},
		// One spelling per signature: hex decodes either case.
		{"in capitals", secret, body, strings.ToUpper(good), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wire.Verify(tt.secret, tt.body, tt.sig); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
