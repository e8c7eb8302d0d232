package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/shadow"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// internalBody is the answer when a response cannot be encoded.
var internalBody = []byte(`{"error":{"code":"INTERNAL","message":"internal error"}}` + "\n")

// writeJSON answers v with the status. It encodes before writing the
// status, so a value that cannot be encoded becomes a 500 rather than a
// success with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, ok := encode(v)
	if !ok {
		status = http.StatusInternalServerError
	}
	writeBody(w, status, b)
}

// encode is v as one line of JSON, or the INTERNAL answer when v cannot
// be encoded.
func encode(v any) ([]byte, bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return internalBody, false
	}
	return append(b, '\n'), true
}

// writeBody sends a JSON body with the status.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; a failed write means the client went away and
	// there is no one left to tell.
	_, _ = w.Write(b)
}

// catalogMaxAge is how long a browser, proxy or CDN may keep a public
// catalogue answer: the gateway's own cache TTL, so a page held outside
// is no older than one the gateway would serve.
const catalogMaxAge = time.Second

// writeCatalog answers a public catalogue read so that others may cache
// it: Cache-Control public with catalogMaxAge, and an ETag of the body; a
// request whose If-None-Match names that ETag (or *) gets 304 Not
// Modified without the body.
func writeCatalog(w http.ResponseWriter, r *http.Request, v any) {
	b, ok := encode(v)
	if !ok {
		writeBody(w, http.StatusInternalServerError, b)
		return
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	// The same URL answers the pressure test's catalogue to a marked
	// request: a shared cache must key by the mark, and keeps no marked
	// answer at all.
	h.Set("Vary", shadow.Header)
	if shadow.Is(r.Context()) {
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(catalogMaxAge/time.Second)))
	}
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeBody(w, http.StatusOK, b)
}

// etagMatches reports whether an If-None-Match header names etag: "*",
// or one of its comma-separated tags, weak (W/) or strong (RFC 9110's weak
// comparison, which If-None-Match uses).
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// The views below turn gRPC messages into the JSON shapes of package api.

func viewProduct(p *productv1.Product) api.Product {
	return api.Product{SKUID: formatID(p.GetSkuId()), Title: p.GetTitle(), Price: p.GetPrice(), Stock: p.GetStock()}
}

func viewActivity(a *productv1.Activity) api.Activity {
	return api.Activity{
		ActivityID:        formatID(a.GetActivityId()),
		SKUID:             formatID(a.GetSkuId()),
		Title:             a.GetTitle(),
		Price:             a.GetPrice(),
		Stock:             a.GetStock(),
		Remaining:         a.GetRemaining(),
		PerUserLimit:      a.GetPerUserLimit(),
		StartsAt:          utc(a.GetStartsAt()),
		EndsAt:            utc(a.GetEndsAt()),
		Status:            strings.TrimPrefix(a.GetStatus().String(), "ACTIVITY_STATUS_"),
		ChallengeRequired: a.GetChallengeRequired(),
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
