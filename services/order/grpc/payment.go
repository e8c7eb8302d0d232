package grpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/platform/errcode"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	"github.com/flashsale/flashsale/services/order"
)

// paymentErrors maps the payment service's answers to a refund: CONFLICT
// is a payment that did not pay its order or has less left to refund.
var paymentErrors = errcode.Table{
	{Err: order.ErrConflict, Code: errcode.Conflict},
	{Err: order.ErrNotFound, Code: errcode.NotFound},
	{Err: order.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: order.ErrUnavailable, Code: errcode.Unavailable},
}

// Payments implements order.Payments with the payment service.
type Payments struct {
	c paymentv1.PaymentServiceClient
}

// NewPayments returns a client on cc.
func NewPayments(cc grpc.ClientConnInterface) *Payments {
	return &Payments{c: paymentv1.NewPaymentServiceClient(cc)}
}

// Refund returns amount of the payment through its channel, idempotently
// by refundID.
func (p *Payments) Refund(ctx context.Context, paymentID, refundID, amount int64) error {
	if _, err := p.c.RefundPayment(ctx, &paymentv1.RefundPaymentRequest{PaymentId: paymentID, RefundId: refundID, Amount: amount}); err != nil {
		return fmt.Errorf("payment refund: %w", paymentErrors.Domain(err))
	}
	return nil
}
