package gateway_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
)

// fakePayment answers the gateway's payment calls and records them.
type fakePayment struct {
	paymentv1.PaymentServiceClient
	mu        sync.Mutex
	pays      []*paymentv1.PayRequest
	callbacks []*paymentv1.CallbackRequest
	updates   []*paymentv1.UpdateChannelRequest
	err       error
	// owner is the user every payment belongs to (the test's user 5).
	owner int64
}

func (f *fakePayment) Pay(_ context.Context, in *paymentv1.PayRequest, _ ...grpc.CallOption) (*paymentv1.Payment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pays = append(f.pays, in)
	if f.err != nil {
		return nil, f.err
	}
	return &paymentv1.Payment{PaymentId: 77, OrderId: in.GetOrderId(), UserId: in.GetUserId(), Channel: "wechat",
		Amount: 9900, Status: paymentv1.PaymentStatus_PAYMENT_STATUS_PAYING, PayUrl: "http://sim/wechat/wallet/1"}, nil
}

func (f *fakePayment) GetPayment(_ context.Context, in *paymentv1.GetPaymentRequest, _ ...grpc.CallOption) (*paymentv1.Payment, error) {
	// The payment belongs to user 5 whoever asks: the gateway must check.
	return &paymentv1.Payment{PaymentId: in.GetPaymentId(), OrderId: 3, UserId: f.owner, Channel: "alipay", Amount: 100,
		Status: paymentv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED}, nil
}

func (f *fakePayment) HandleCallback(_ context.Context, in *paymentv1.CallbackRequest, _ ...grpc.CallOption) (*paymentv1.CallbackResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callbacks = append(f.callbacks, in)
	if in.GetSignature() != "good" {
		return nil, errcode.New(errcode.Unauthenticated, "bad signature")
	}
	return &paymentv1.CallbackResponse{}, nil
}

func (f *fakePayment) UpdateChannel(_ context.Context, in *paymentv1.UpdateChannelRequest, _ ...grpc.CallOption) (*paymentv1.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, in)
	return &paymentv1.Channel{Name: in.GetChannel(), Weight: in.GetWeight(), Enabled: in.GetEnabled(), Breaker: "closed", SuccessRate: 1}, nil
}

func MustPaymentGateway(tb testing.TB) (*testGateway, *fakePayment) {
	tb.Helper()
	fp := &fakePayment{}
	tg := MustGateway(tb, gatewayConfig{opts: gateway.Options{Payment: fp}})
	fp.owner = tg.user(5)
	return tg, fp
}

func TestPayRoute(t *testing.T) {
	tg, fp := MustPaymentGateway(t)
	user := tg.token(t, 5, "user")
	tests := []struct {
		name        string
		req         request
		wantStatus  int
		wantCode    string
		wantChannel string // sent to payment; "" when payment must not be called
	}{
		{"preferred channel", request{method: "POST", path: "/api/v1/orders/3/pay", token: user, body: `{"channel":"wechat"}`}, 200, "", "wechat"},
		{"no preference routes automatically", request{method: "POST", path: "/api/v1/orders/3/pay", token: user, body: `{}`}, 200, "", "auto"},
		{"no token", request{method: "POST", path: "/api/v1/orders/3/pay", body: `{"channel":"auto"}`}, 401, "UNAUTHENTICATED", ""},
		{"bad order id", request{method: "POST", path: "/api/v1/orders/x/pay", token: user, body: `{"channel":"auto"}`}, 400, "INVALID_ARGUMENT", ""},
		{"unknown field", request{method: "POST", path: "/api/v1/orders/3/pay", token: user, body: `{"chanel":"auto"}`}, 400, "INVALID_ARGUMENT", ""},
		{"empty channel", request{method: "POST", path: "/api/v1/orders/3/pay", token: user, body: `{"channel":""}`}, 400, "INVALID_ARGUMENT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fp.pays)
			a := tg.do(t, tt.req)
			if a.status != tt.wantStatus || a.code(t) != tt.wantCode {
				t.Fatalf("status %d code %q, want %d %q (%s)", a.status, a.code(t), tt.wantStatus, tt.wantCode, a.body)
			}
			if tt.wantChannel == "" {
				if len(fp.pays) != before {
					t.Errorf("payment was called")
				}
				return
			}
			if got := fp.pays[len(fp.pays)-1]; got.GetChannel() != tt.wantChannel || got.GetUserId() != tg.user(5) || got.GetOrderId() != 3 {
				t.Errorf("payment got %+v, want channel %s for user 5, order 3", got, tt.wantChannel)
			}
			var p api.Payment
			a.decode(t, &p)
			want := api.Payment{PaymentID: "77", OrderID: "3", Channel: "wechat", Amount: 9900, Status: "PAYING", PayURL: "http://sim/wechat/wallet/1"}
			if p != want {
				t.Errorf("answer %+v, want %+v", p, want)
			}
		})
	}
	fp.err = errcode.New(errcode.Conflict, "order is EXPIRED")
	if a := tg.do(t, request{method: "POST", path: "/api/v1/orders/3/pay", token: user, body: `{"channel":"auto"}`}); a.status != 409 || a.code(t) != "CONFLICT" {
		t.Errorf("paying an unpayable order: %d %s, want 409 CONFLICT", a.status, a.body)
	}
}

func TestCallbackRoute(t *testing.T) {
	tg, fp := MustPaymentGateway(t)
	body := `{"notify_id":"n-1","trade_no":"1"}`
	tests := []struct {
		name       string
		sig        string
		wantStatus int
	}{
		{"signed", "good", 200},
		{"badly signed", "bad", 401},
		{"unsigned", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tg.do(t, request{method: "POST", path: "/api/v1/payments/callbacks/alipay", body: body,
				header: map[string]string{"X-Signature": tt.sig}})
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
			got := fp.callbacks[len(fp.callbacks)-1]
			if got.GetChannel() != "alipay" || string(got.GetBody()) != body || got.GetSignature() != tt.sig {
				t.Errorf("payment got %+v, want the raw body and signature for alipay", got)
			}
		})
	}
}

func TestGetPaymentRouteOwnerOnly(t *testing.T) {
	tg, _ := MustPaymentGateway(t)
	if a := tg.do(t, request{method: "GET", path: "/api/v1/payments/9", token: tg.token(t, 6, "user")}); a.status != 403 {
		t.Errorf("another user's payment: status %d, want 403", a.status)
	}
	var p api.Payment
	tg.do(t, request{method: "GET", path: "/api/v1/payments/9", token: tg.token(t, 5, "user")}).decode(t, &p)
	if p.PaymentID != "9" || p.Status != "SUCCEEDED" {
		t.Errorf("payment %+v, want 9 SUCCEEDED", p)
	}
}

func TestUpdateChannelRoute(t *testing.T) {
	tg, fp := MustPaymentGateway(t)
	admin := tg.token(t, 1, "admin")
	tests := []struct {
		name       string
		token      string
		body       string
		wantStatus int
	}{
		{"admin", admin, `{"weight":50,"enabled":false}`, 200},
		{"not an admin", tg.token(t, 1, "user"), `{"weight":50,"enabled":true}`, 403},
		{"negative weight", admin, `{"weight":-1,"enabled":true}`, 400},
		{"enabled missing", admin, `{"weight":5}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := tg.do(t, request{method: "PUT", path: "/admin/v1/channels/wechat", token: tt.token, body: tt.body}); a.status != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", a.status, tt.wantStatus, a.body)
			}
		})
	}
	if len(fp.updates) != 1 || fp.updates[0].GetChannel() != "wechat" || fp.updates[0].GetWeight() != 50 || fp.updates[0].GetEnabled() {
		t.Errorf("payment got %v, want one update of wechat to weight 50, disabled", fp.updates)
	}
}
