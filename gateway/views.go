package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/gateway/api"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// internalBody is the answer when a response cannot be encoded.
var internalBody = []byte(`{"error":{"code":"INTERNAL","message":"internal error"}}` + "\n")

// writeJSON answers v with the status. It encodes before writing the
// status, so a value that cannot be encoded becomes a 500 rather than a
// success with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, internalBody
	} else {
		b = append(b, '\n')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; a failed write means the client went away and
	// there is no one left to tell.
	_, _ = w.Write(b)
}

// The views below turn gRPC messages into the JSON shapes of package api.

func viewProduct(p *productv1.Product) api.Product {
	return api.Product{SKUID: formatID(p.GetSkuId()), Title: p.GetTitle(), Price: p.GetPrice(), Stock: p.GetStock()}
}

func viewActivity(a *productv1.Activity) api.Activity {
	return api.Activity{
		ActivityID:   formatID(a.GetActivityId()),
		SKUID:        formatID(a.GetSkuId()),
		Title:        a.GetTitle(),
		Price:        a.GetPrice(),
		Stock:        a.GetStock(),
		Remaining:    a.GetRemaining(),
		PerUserLimit: a.GetPerUserLimit(),
		StartsAt:     utc(a.GetStartsAt()),
		EndsAt:       utc(a.GetEndsAt()),
		Status:       strings.TrimPrefix(a.GetStatus().String(), "ACTIVITY_STATUS_"),
	}
}

func viewOrder(o *orderv1.Order) api.Order {
	v := api.Order{
		OrderID:  optionalID(o.GetOrderId()),
		UserID:   formatID(o.GetUserId()),
		Kind:     strings.TrimPrefix(o.GetKind().String(), "ORDER_KIND_"),
		Status:   optionalStatus(o.GetStatus()),
		Lines:    make([]api.OrderLine, 0, len(o.GetLines())),
		Total:    o.GetTotal(),
		Discount: o.GetDiscount(),
		Payable:  o.GetPayable(),
		// An order without promotions sends an empty list, so clients
		// can range over it.
		Promotions: make([]api.Promotion, 0, len(o.GetPromotions())),
		CreatedAt:  optionalTime(o.GetCreatedAt()),
		ExpiresAt:  optionalTime(o.GetExpiresAt()),
		PaidAt:     optionalTime(o.GetPaidAt()),
		Refunded:   o.GetRefunded(),
	}
	if o.GetActivityId() != 0 {
		v.ActivityID = formatID(o.GetActivityId())
	}
	if pay := o.GetPayment(); pay != nil {
		v.Payment = &api.OrderPayment{PaymentID: formatID(pay.GetPaymentId()), Channel: pay.GetChannel(), Status: pay.GetStatus()}
	}
	v.CouponID = optionalID(o.GetCouponId())
	for _, p := range o.GetPromotions() {
		v.Promotions = append(v.Promotions, api.Promotion{ID: formatID(p.GetId()), Kind: p.GetKind(), Amount: p.GetAmount()})
	}
	for _, l := range o.GetLines() {
		v.Lines = append(v.Lines, api.OrderLine{
			LineID:           optionalID(l.GetLineId()),
			SKUID:            formatID(l.GetSkuId()),
			Quantity:         l.GetQuantity(),
			UnitPrice:        l.GetUnitPrice(),
			Amount:           l.GetAmount(),
			Discount:         l.GetDiscount(),
			Payable:          l.GetPayable(),
			RefundedQuantity: l.GetRefundedQuantity(),
			Refunded:         l.GetRefunded(),
		})
	}
	return v
}

// optionalID is empty for a zero id (a quote has no order or line ids),
// so the field is omitted.
func optionalID(id int64) string {
	if id == 0 {
		return ""
	}
	return formatID(id)
}

// optionalStatus is empty for an unset status (a quote's).
func optionalStatus(s orderv1.OrderStatus) string {
	if s == orderv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
		return ""
	}
	return orderStatus(s)
}

func utc(ts *timestamppb.Timestamp) time.Time { return ts.AsTime().UTC() }

// optionalTime is nil for an unset timestamp, so the field is omitted
// rather than sent as 1970.
func optionalTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := utc(ts)
	return &t
}
