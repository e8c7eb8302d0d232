package order_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flashsale/flashsale/services/order"
)

func (f *fakes) Confirm(_ context.Context, _, orderID int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.confirmErr != nil {
		return f.confirmErr
	}
	f.confirmed[orderID]++
	return nil
}

func (f *fakes) MarkPaid(_ context.Context, p order.Paid) (order.Order, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.stored[p.OrderID]
	if !ok {
		return order.Order{}, false, order.ErrNotFound
	}
	if o.Status == order.StatusPendingPayment && o.Payable == p.Amount {
		o.Status, o.PaidAt, o.PaymentID, o.PaymentChannel = order.StatusPaid, p.PaidAt, p.PaymentID, p.Channel
		f.stored[p.OrderID] = o
		return o, true, nil
	}
	return o, false, nil
}

// MustStoredOrder places a one-unit order of activity 7 and stores it.
func MustStoredOrder(tb testing.TB, f *fakes, svc *useCases) order.Order {
	tb.Helper()
	id, err := svc.PlaceSeckillOrder(context.Background(), 1, 7, 1, "pay")
	if err != nil {
		tb.Fatal(err)
	}
	f.store(id)
	return f.stored[id]
}

func TestMarkPaid(t *testing.T) {
	paidAt := start.Add(time.Minute)
	tests := []struct {
		name       string
		setup      func(f *fakes, o order.Order) // before the call
		paymentID  int64
		amount     func(o order.Order) int64
		confirmErr error
		wantAcc    bool
		wantStatus order.Status
		wantErr    error
		wantConf   int
	}{
		{name: "pending order is paid and confirmed", paymentID: 5, wantAcc: true, wantStatus: order.StatusPaid, wantConf: 1},
		{name: "a retry of the same payment is accepted and confirms again", paymentID: 5,
			setup: func(f *fakes, o order.Order) {
				o.Status, o.PaymentID, o.PaidAt = order.StatusPaid, 5, paidAt
				f.stored[o.ID] = o
			},
			wantAcc: true, wantStatus: order.StatusPaid, wantConf: 1},
		{name: "refunded since this payment paid it: a resumed settlement is accepted", paymentID: 5,
			setup: func(f *fakes, o order.Order) {
				o.Status, o.PaymentID, o.PaidAt = order.StatusRefunded, 5, paidAt
				f.stored[o.ID] = o
			},
			wantAcc: true, wantStatus: order.StatusRefunded, wantConf: 1},
		{name: "partly refunded since this payment paid it", paymentID: 5,
			setup: func(f *fakes, o order.Order) {
				o.Status, o.PaymentID, o.PaidAt = order.StatusPartiallyRefunded, 5, paidAt
				f.stored[o.ID] = o
			},
			wantAcc: true, wantStatus: order.StatusPartiallyRefunded, wantConf: 1},
		{name: "refunded, paid by another payment", paymentID: 6,
			setup: func(f *fakes, o order.Order) {
				o.Status, o.PaymentID, o.PaidAt = order.StatusRefunded, 5, paidAt
				f.stored[o.ID] = o
			},
			wantAcc: false, wantStatus: order.StatusRefunded},
		{name: "paid by another payment", paymentID: 6,
			setup: func(f *fakes, o order.Order) {
				o.Status, o.PaymentID, o.PaidAt = order.StatusPaid, 5, paidAt
				f.stored[o.ID] = o
			},
			wantAcc: false, wantStatus: order.StatusPaid},
		{name: "expired", paymentID: 5,
			setup:   func(f *fakes, o order.Order) { o.Status = order.StatusExpired; f.stored[o.ID] = o },
			wantAcc: false, wantStatus: order.StatusExpired},
		{name: "cancelled", paymentID: 5,
			setup:   func(f *fakes, o order.Order) { o.Status = order.StatusCancelled; f.stored[o.ID] = o },
			wantAcc: false, wantStatus: order.StatusCancelled},
		{name: "wrong amount", paymentID: 5, amount: func(o order.Order) int64 { return o.Payable - 1 },
			wantAcc: false, wantStatus: order.StatusPendingPayment},
		{name: "inventory down: paid, but the caller must retry", paymentID: 5,
			confirmErr: order.ErrUnavailable, wantErr: order.ErrUnavailable, wantStatus: order.StatusPaid},
		{name: "released reservation is logged, payment stands", paymentID: 5,
			confirmErr: order.ErrStockReleased, wantAcc: true, wantStatus: order.StatusPaid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes()
			svc, _ := MustService(t, f)
			o := MustStoredOrder(t, f, svc)
			if tt.setup != nil {
				tt.setup(f, o)
			}
			f.confirmErr = tt.confirmErr
			amount := o.Payable
			if tt.amount != nil {
				amount = tt.amount(o)
			}
			_, acc, err := svc.MarkPaid(context.Background(), order.Paid{
				OrderID: o.ID, PaymentID: tt.paymentID, Channel: "alipay", Amount: amount, PaidAt: paidAt,
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if acc != tt.wantAcc {
				t.Errorf("accepted = %v, want %v", acc, tt.wantAcc)
			}
			if got := f.stored[o.ID].Status; got != tt.wantStatus {
				t.Errorf("status = %s, want %s", got, tt.wantStatus)
			}
			if got := f.confirmed[o.ID]; got != tt.wantConf {
				t.Errorf("confirmations = %d, want %d", got, tt.wantConf)
			}
		})
	}
}

func TestMarkPaidRejectsInvalid(t *testing.T) {
	f := newFakes()
	svc, _ := MustService(t, f)
	for _, p := range []order.Paid{
		{OrderID: 0, PaymentID: 1, Channel: "alipay", PaidAt: start},
		{OrderID: 1, PaymentID: 0, Channel: "alipay", PaidAt: start},
		{OrderID: 1, PaymentID: 1, PaidAt: start},
		{OrderID: 1, PaymentID: 1, Channel: "alipay"},
	} {
		if _, _, err := svc.MarkPaid(context.Background(), p); !errors.Is(err, order.ErrInvalid) {
			t.Errorf("MarkPaid(%+v) = %v, want ErrInvalid", p, err)
		}
	}
}
