package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// writeJSON answers v with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; a failed write means the client went away and
	// there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// The types below are the JSON shapes of API.md: ids as strings of
// digits, money as integer cents, times in RFC 3339 (UTC).

type productView struct {
	SKUID string `json:"sku_id"`
	Title string `json:"title"`
	Price int64  `json:"price"`
	Stock int64  `json:"stock"`
}

func viewProduct(p *productv1.Product) productView {
	return productView{SKUID: formatID(p.GetSkuId()), Title: p.GetTitle(), Price: p.GetPrice(), Stock: p.GetStock()}
}

type activityView struct {
	ActivityID   string    `json:"activity_id"`
	SKUID        string    `json:"sku_id"`
	Title        string    `json:"title,omitempty"`
	Price        int64     `json:"price"`
	Stock        int64     `json:"stock"`
	Remaining    int64     `json:"remaining"`
	PerUserLimit int64     `json:"per_user_limit"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	Status       string    `json:"status"`
}

func viewActivity(a *productv1.Activity) activityView {
	return activityView{
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

type orderLineView struct {
	LineID    string `json:"line_id"`
	SKUID     string `json:"sku_id"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
	Amount    int64  `json:"amount"`
	Discount  int64  `json:"discount"`
	Payable   int64  `json:"payable"`
}

type promotionView struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Amount int64  `json:"amount"`
}

type orderView struct {
	OrderID    string          `json:"order_id"`
	UserID     string          `json:"user_id"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	ActivityID string          `json:"activity_id,omitempty"`
	Lines      []orderLineView `json:"lines"`
	Total      int64           `json:"total"`
	Discount   int64           `json:"discount"`
	Payable    int64           `json:"payable"`
	Promotions []promotionView `json:"promotions"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
	PaidAt     *time.Time      `json:"paid_at,omitempty"`
}

func viewOrder(o *orderv1.Order) orderView {
	v := orderView{
		OrderID:  formatID(o.GetOrderId()),
		UserID:   formatID(o.GetUserId()),
		Kind:     strings.TrimPrefix(o.GetKind().String(), "ORDER_KIND_"),
		Status:   orderStatus(o.GetStatus()),
		Lines:    make([]orderLineView, 0, len(o.GetLines())),
		Total:    o.GetTotal(),
		Discount: o.GetDiscount(),
		Payable:  o.GetPayable(),
		// Promotions come with the marketing service; until then an
		// order has none, sent as an empty list so clients can range
		// over it.
		Promotions: []promotionView{},
		CreatedAt:  optionalTime(o.GetCreatedAt()),
		ExpiresAt:  optionalTime(o.GetExpiresAt()),
		PaidAt:     optionalTime(o.GetPaidAt()),
	}
	if o.GetActivityId() != 0 {
		v.ActivityID = formatID(o.GetActivityId())
	}
	for _, l := range o.GetLines() {
		v.Lines = append(v.Lines, orderLineView{
			LineID:    formatID(l.GetLineId()),
			SKUID:     formatID(l.GetSkuId()),
			Quantity:  l.GetQuantity(),
			UnitPrice: l.GetUnitPrice(),
			Amount:    l.GetAmount(),
			Discount:  l.GetDiscount(),
			Payable:   l.GetPayable(),
		})
	}
	return v
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
