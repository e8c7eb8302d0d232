package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// getOrder answers one of the caller's orders. Order refuses (FORBIDDEN)
// an order that belongs to someone else; the gateway checks the owner
// again, so no answer of another user's order can slip through.
func (g *Gateway) getOrder(w http.ResponseWriter, r *http.Request) error {
	return g.ownOrder(w, r, func(ctx context.Context, id, caller int64) (*orderv1.Order, error) {
		return g.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id, UserId: caller})
	})
}

// cancelOrder cancels one of the caller's orders while it waits for
// payment and answers it CANCELLED. Order decides ownership and state
// (FORBIDDEN, CONFLICT); cancelling a cancelled order answers it again.
func (g *Gateway) cancelOrder(w http.ResponseWriter, r *http.Request) error {
	return g.ownOrder(w, r, func(ctx context.Context, id, caller int64) (*orderv1.Order, error) {
		return g.order.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: id, UserId: caller})
	})
}

// ownOrder calls order for the path's order on behalf of the caller and
// answers the order it returns, after checking that it is the caller's.
func (g *Gateway) ownOrder(w http.ResponseWriter, r *http.Request,
	call func(ctx context.Context, id, caller int64) (*orderv1.Order, error)) error {
	id, err := parseID("order_id", r.PathValue("order_id"))
	if err != nil {
		return err
	}
	caller := callerOf(r.Context()).UserID
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	o, err := call(ctx, id, caller)
	if err != nil {
		return err
	}
	if o.GetUserId() != caller {
		return errorf(errcode.Forbidden, "this order belongs to another user")
	}
	writeJSON(w, http.StatusOK, viewOrder(o))
	return nil
}

type refundLineRequest struct {
	LineID   *string `json:"line_id"`
	Quantity *int64  `json:"quantity"`
}

type refundRequest struct {
	Lines []refundLineRequest `json:"lines"`
}

// refundOrder refunds units of the caller's paid order, line by line.
// Order decides ownership, state and what is left to refund (FORBIDDEN,
// CONFLICT); the gateway checks the owner of the answer again. The
// required Idempotency-Key names the refund within the order: a retry
// answers the first refund.
func (g *Gateway) refundOrder(w http.ResponseWriter, r *http.Request) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	id, err := parseID("order_id", r.PathValue("order_id"))
	if err != nil {
		return err
	}
	var body refundRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if err := checkLineCount(len(body.Lines)); err != nil {
		return err
	}
	caller := callerOf(r.Context()).UserID
	req := &orderv1.RefundOrderRequest{OrderId: id, UserId: caller, IdempotencyKey: key, Lines: make([]*orderv1.RefundLine, len(body.Lines))}
	var f fields
	for i, l := range body.Lines {
		req.Lines[i] = &orderv1.RefundLine{
			LineId:   f.id("lines[].line_id", l.LineID),
			Quantity: f.int("lines[].quantity", l.Quantity, 1, maxCartQuantity),
		}
	}
	if f.err != nil {
		return f.err
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	resp, err := g.order.RefundOrder(ctx, req)
	if err != nil {
		return err
	}
	if resp.GetOrder().GetUserId() != caller {
		return errorf(errcode.Forbidden, "this order belongs to another user")
	}
	out := api.Refund{
		RefundID: formatID(resp.GetRefundId()), OrderID: formatID(id), Amount: resp.GetAmount(), Status: resp.GetStatus(),
		Lines: make([]api.RefundedLine, 0, len(resp.GetLines())), Order: viewOrder(resp.GetOrder()),
	}
	for _, l := range resp.GetLines() {
		out.Lines = append(out.Lines, api.RefundedLine{LineID: formatID(l.GetLineId()), Quantity: l.GetQuantity(), Amount: l.GetAmount()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type ordersResponse struct {
	Orders []api.Order `json:"orders"`
}

func (g *Gateway) listOrders(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	resp, err := g.order.ListOrders(ctx, &orderv1.ListOrdersRequest{UserId: callerOf(r.Context()).UserID})
	if err != nil {
		return err
	}
	out := ordersResponse{Orders: make([]api.Order, 0, len(resp.GetOrders()))}
	for _, o := range resp.GetOrders() {
		out.Orders = append(out.Orders, viewOrder(o))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// orderStatus is the API name of an order status (PROCESSING, PAID...).
func orderStatus(s orderv1.OrderStatus) string {
	return strings.TrimPrefix(s.String(), "ORDER_STATUS_")
}
