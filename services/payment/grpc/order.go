package grpc

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	"github.com/flashsale/flashsale/services/payment"
)

// orderErrors turns the order service's codes back into domain errors.
var orderErrors = errcode.Table{
	{Err: payment.ErrNotFound, Code: errcode.NotFound},
	{Err: payment.ErrForbidden, Code: errcode.Forbidden},
	{Err: payment.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: payment.ErrUnavailable, Code: errcode.Unavailable},
}

// Orders implements payment.Orders with the order service.
type Orders struct {
	c orderv1.OrderServiceClient
}

// NewOrders returns a client on cc.
func NewOrders(cc grpc.ClientConnInterface) *Orders {
	return &Orders{c: orderv1.NewOrderServiceClient(cc)}
}

// Order returns the user's order.
func (o *Orders) Order(ctx context.Context, orderID, userID int64) (payment.Order, error) {
	m, err := o.c.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID, UserId: userID})
	if err != nil {
		return payment.Order{}, orderErrors.Domain(err)
	}
	return payment.Order{
		ID: m.GetOrderId(), UserID: m.GetUserId(), Payable: m.GetPayable(),
		Status: orderStatus(m.GetStatus()), PaymentID: m.GetPayment().GetPaymentId(),
	}, nil
}

// MarkPaid tells the order service that p's money arrived.
func (o *Orders) MarkPaid(ctx context.Context, p payment.Payment) (bool, string, error) {
	resp, err := o.c.MarkPaid(ctx, &orderv1.MarkPaidRequest{
		OrderId: p.OrderID, PaymentId: p.ID, Channel: p.Channel, Amount: p.Amount, PaidAt: timestamppb.New(p.PaidAt),
	})
	if err != nil {
		return false, "", orderErrors.Domain(err)
	}
	return resp.GetAccepted(), orderStatus(resp.GetOrder().GetStatus()), nil
}

func orderStatus(s orderv1.OrderStatus) string {
	return strings.TrimPrefix(s.String(), "ORDER_STATUS_")
}
