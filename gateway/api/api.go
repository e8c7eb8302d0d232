// Package api holds the JSON shapes of the gateway's HTTP contract
// (docs/api.md): ids are strings of decimal digits, money is integer cents,
// times are RFC 3339. The gateway writes them and clients (the load replay,
// the tests) read them, so both sides share one definition.
package api

import (
	"crypto/sha256"
	mbits "math/bits"
	"strconv"
	"strings"
	"time"
)

// Product is a catalog product.
type Product struct {
	SKUID string `json:"sku_id"`
	Title string `json:"title"`
	Price int64  `json:"price"`
	Stock int64  `json:"stock"`
}

// Activity is a flash sale. Status is UPCOMING, ACTIVE, SOLD_OUT or ENDED.
type Activity struct {
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
	// ChallengeRequired: a buy must carry a solved challenge
	// (GET /api/v1/activities/{id}/challenge).
	ChallengeRequired bool `json:"challenge_required"`
}

// SeckillAccepted is the 202 answer of a flash-sale buy.
type SeckillAccepted struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// OrderLine is one line of an order: Amount = UnitPrice × Quantity and
// Payable = Amount − Discount ≥ 0. RefundedQuantity units of it were
// refunded, for Refunded ≤ Payable (both omitted while zero).
type OrderLine struct {
	LineID           string `json:"line_id,omitempty"` // none in a quote
	SKUID            string `json:"sku_id"`
	Quantity         int64  `json:"quantity"`
	UnitPrice        int64  `json:"unit_price"`
	Amount           int64  `json:"amount"`
	Discount         int64  `json:"discount"`
	Payable          int64  `json:"payable"`
	RefundedQuantity int64  `json:"refunded_quantity,omitempty"`
	Refunded         int64  `json:"refunded,omitempty"`
}

// Promotion is a discount applied to an order.
type Promotion struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Amount int64  `json:"amount"`
}

// Order is an order; its Total, Discount and Payable are the sums over its
// lines.
type Order struct {
	OrderID    string      `json:"order_id,omitempty"` // none in a quote
	UserID     string      `json:"user_id"`
	Kind       string      `json:"kind"`
	Status     string      `json:"status,omitempty"` // none in a quote
	ActivityID string      `json:"activity_id,omitempty"`
	Lines      []OrderLine `json:"lines"`
	Total      int64       `json:"total"`
	Discount   int64       `json:"discount"`
	Payable    int64       `json:"payable"`
	Promotions []Promotion `json:"promotions"`
	CouponID   string      `json:"coupon_id,omitempty"`
	CreatedAt  *time.Time  `json:"created_at,omitempty"`
	ExpiresAt  *time.Time  `json:"expires_at,omitempty"`
	PaidAt     *time.Time  `json:"paid_at,omitempty"`
	// Payment is the payment that paid the order; absent until paid.
	Payment *OrderPayment `json:"payment,omitempty"`
	// Refunded is what the order's refunds returned, the sum over its
	// lines; omitted while zero.
	Refunded int64 `json:"refunded,omitempty"`
}

// Refund answers POST /api/v1/orders/{order_id}/refunds. Amount is the
// sum of the lines' amounts, each from the apportionment of the line's
// discount over its units. Status is SUCCEEDED once the money is back
// through the channel that took it, PENDING while the platform is still
// returning it (it finishes on its own). Order is the order afterwards,
// PARTIALLY_REFUNDED or REFUNDED.
type Refund struct {
	RefundID string         `json:"refund_id"`
	OrderID  string         `json:"order_id"`
	Amount   int64          `json:"amount"`
	Status   string         `json:"status"`
	Lines    []RefundedLine `json:"lines"`
	Order    Order          `json:"order"`
}

// RefundedLine is one line of a refund.
type RefundedLine struct {
	LineID   string `json:"line_id"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount"`
}

// OrderPayment names the payment of a paid order.
type OrderPayment struct {
	PaymentID string `json:"payment_id"`
	Channel   string `json:"channel"`
	Status    string `json:"status"`
}

// Payment is a payment of an order. Status is PAYING, SUCCEEDED, FAILED
// or REFUNDED; PayURL is where the buyer confirms at the channel.
type Payment struct {
	PaymentID string `json:"payment_id"`
	OrderID   string `json:"order_id"`
	Channel   string `json:"channel"`
	Amount    int64  `json:"amount"`
	Status    string `json:"status"`
	PayURL    string `json:"pay_url,omitempty"`
}

// Channel is a payment channel's routing state, the answer of
// PUT /admin/v1/channels/{channel}.
type Channel struct {
	Channel     string  `json:"channel"`
	Weight      int64   `json:"weight"`
	Enabled     bool    `json:"enabled"`
	Breaker     string  `json:"breaker"`
	SuccessRate float64 `json:"success_rate"`
	LatencyMS   float64 `json:"latency_ms"`
}

// PromotionCreated answers POST /admin/v1/promotions.
type PromotionCreated struct {
	PromotionID string `json:"promotion_id"`
}

// CouponTemplateCreated answers POST /admin/v1/coupon-templates.
type CouponTemplateCreated struct {
	TemplateID string `json:"template_id"`
}

// Coupon is a user's coupon. Status is AVAILABLE, USED or EXPIRED;
// OrderID is set while an order holds it.
type Coupon struct {
	CouponID   string    `json:"coupon_id"`
	TemplateID string    `json:"template_id"`
	Threshold  int64     `json:"threshold"`
	Amount     int64     `json:"amount"`
	ValidFrom  time.Time `json:"valid_from"`
	ValidUntil time.Time `json:"valid_until"`
	Status     string    `json:"status"`
	OrderID    string    `json:"order_id,omitempty"`
}

// Coupons answers GET /api/v1/coupons.
type Coupons struct {
	Coupons []Coupon `json:"coupons"`
}

// ErrorBody is every non-2xx answer's body.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names the error: Code is one of the error table's codes.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// The headers of the flash-sale entry's bot wall (docs/api.md): the
// client's device id, and on a buy of a sale that requires a challenge,
// the challenge string as it came and the answer that solves it.
const (
	DeviceHeader          = "X-Device-Id"
	ChallengeHeader       = "X-Challenge"
	ChallengeAnswerHeader = "X-Challenge-Answer"
)

// Challenge is the answer of GET /api/v1/activities/{id}/challenge: find
// an answer (decimal digits) such that SHA-256(challenge ":" answer)
// starts with Bits zero bits (SolvesChallenge), wait WaitMS milliseconds
// from receiving it, then buy with both in the headers. NotBefore and
// ExpiresAt are the platform's times the buy must fall between.
type Challenge struct {
	Challenge string    `json:"challenge"`
	Bits      int       `json:"difficulty"`
	WaitMS    int64     `json:"wait_ms"`
	NotBefore time.Time `json:"not_before"`
	ExpiresAt time.Time `json:"expires_at"`
}

// maxAnswerLen bounds a challenge answer's digits (an int64 has at most
// 19).
const maxAnswerLen = 20

// SolvesChallenge reports whether answer, 1 to 20 decimal digits, solves
// the challenge: SHA-256(challenge ":" answer) starts with at least bits
// zero bits.
func SolvesChallenge(challenge, answer string, bits int) bool {
	if answer == "" || len(answer) > maxAnswerLen || strings.Trim(answer, "0123456789") != "" {
		return false
	}
	h := sha256.Sum256([]byte(challenge + ":" + answer))
	zeros := 0
	for _, b := range h {
		if b != 0 {
			zeros += mbits.LeadingZeros8(b)
			break
		}
		zeros += 8
	}
	return zeros >= bits
}

// SolveChallenge finds the smallest answer that solves the challenge,
// as a browser's page does: 2^bits tries on average.
func SolveChallenge(challenge string, bits int) string {
	for n := uint64(0); ; n++ {
		if a := strconv.FormatUint(n, 10); SolvesChallenge(challenge, a, bits) {
			return a
		}
	}
}
