// Package wire is the HTTP API of the payment channels that the channel
// simulator plays (alipay, wechat, unionpay): the JSON bodies, the trade
// states, the signature of asynchronous notifications and the merchant's
// credentials with each channel. The payment service owns it (its
// channel client speaks it); the simulator, a stand-in for the channels'
// side, imports it, so both sides share one definition and no service
// code depends on the simulator.
package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/flashsale/flashsale/platform/config"
)

// Channel names a payment channel and the secret the merchant and the
// channel share to sign its notifications.
type Channel struct {
	Name   string
	Secret string
}

// DefaultChannels are the channels of development (make up, the demo,
// compose with FLASHSALE_DEV). Their secrets are printed here, so outside
// development they are refused (ParseChannels).
var DefaultChannels = []Channel{
	{Name: "alipay", Secret: "alipay-dev-secret"},
	{Name: "wechat", Secret: "wechat-dev-secret"},
	{Name: "unionpay", Secret: "unionpay-dev-secret"},
}

// ParseChannels reads the variable name as name=secret pairs. The
// payment service and the simulator read the same variable, so both sides
// agree on the secrets. It is a secret (config.Env.Secret): outside
// development it is required and no secret printed in this repository is
// accepted; in development it defaults to DefaultChannels.
func ParseChannels(env *config.Env, name string) []Channel {
	if env.Secret(name) == "" {
		return DefaultChannels
	}
	var out []Channel
	for _, pair := range env.List(name, nil) {
		n, secret, ok := strings.Cut(pair, "=")
		env.Check(ok && n != "" && secret != "", "%s: %q is not name=secret", name, pair)
		out = append(out, Channel{Name: n, Secret: secret})
	}
	// A value of separators only (",") is set, and no placeholder, but
	// names no channel: refused, or the service would fall back to
	// DefaultChannels, whose secrets are printed above.
	env.Check(len(out) > 0, "%s: names no channel: want name=secret pairs separated by commas", name)
	return out
}

// PressureTestHeader marks a merchant's request to a channel as
// pressure-test traffic (platform/shadow): the channel keeps such trades
// apart from real ones, as a channel's sandbox merchant would, and says
// so in their notifications (Notification.PressureTest, under the
// signature, so the mark cannot be added or removed on the way back).
const PressureTestHeader = "X-Pressure-Test"

// SignatureHeader carries the hex HMAC-SHA256 of a notification's raw body
// under the channel's secret.
const SignatureHeader = "X-Signature"

// Sign returns the signature of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, as Sign
// writes it (lower-case hex: a signature has one spelling), in constant
// time so that a forger learns nothing from timing.
func Verify(secret, body []byte, sig string) bool {
	if len(secret) == 0 {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(Sign(secret, body)))
}

// TradeStatus is where a trade stands at the channel.
type TradeStatus string

// The trade states: WAIT_PAY until the buyer pays (PAID), then REFUNDED
// once the merchant's refunds add up to the whole amount; a trade partly
// refunded stays PAID with Refunded below Amount.
const (
	TradeWaitPay  TradeStatus = "WAIT_PAY"
	TradePaid     TradeStatus = "PAID"
	TradeRefunded TradeStatus = "REFUNDED"
)

// CreatePayment is the body of POST /{channel}/payments. MerchantRef is
// the merchant's payment id: creating twice with one ref returns the first
// trade.
type CreatePayment struct {
	MerchantRef string `json:"merchant_ref"`
	Amount      int64  `json:"amount"`
	Subject     string `json:"subject"`
}

// Trade is a payment at the channel.
type Trade struct {
	TradeNo     string      `json:"trade_no"`
	MerchantRef string      `json:"merchant_ref"`
	Channel     string      `json:"channel"`
	Amount      int64       `json:"amount"`
	Status      TradeStatus `json:"status"`
	// PayURL is where the buyer confirms: POST to it pays the trade.
	PayURL    string     `json:"pay_url"`
	CreatedAt time.Time  `json:"created_at"`
	PaidAt    *time.Time `json:"paid_at,omitempty"`
	// Refunded is the sum of the trade's refunds, at most Amount.
	Refunded int64 `json:"refunded,omitempty"`
	// Refunds are the trade's refunds, oldest first.
	Refunds []Refund `json:"refunds,omitempty"`
}

// RefundRequest is the body of POST /{channel}/refunds: a refund of part
// or all of a paid trade. A trade takes several refunds as long as they
// add up to no more than its amount. RefundRef is the merchant's refund
// id: refunding twice with one ref returns the first refund and refunds
// nothing more.
type RefundRequest struct {
	TradeNo   string `json:"trade_no"`
	RefundRef string `json:"refund_ref"`
	Amount    int64  `json:"amount"`
}

// Refund is the answer to a RefundRequest.
type Refund struct {
	RefundNo  string `json:"refund_no"`
	RefundRef string `json:"refund_ref"`
	TradeNo   string `json:"trade_no"`
	Amount    int64  `json:"amount"`
}

// Notification is the body of the asynchronous callback a channel posts to
// the merchant when a trade is paid. NotifyID is the same on every retry
// and duplicate of one notification.
type Notification struct {
	NotifyID    string      `json:"notify_id"`
	Channel     string      `json:"channel"`
	TradeNo     string      `json:"trade_no"`
	MerchantRef string      `json:"merchant_ref"`
	Amount      int64       `json:"amount"`
	Status      TradeStatus `json:"status"`
	PaidAt      time.Time   `json:"paid_at"`
	// PressureTest: the trade is pressure-test traffic's, opened with
	// PressureTestHeader.
	PressureTest bool `json:"pressure_test,omitempty"`
}

// Statement is a page of GET /{channel}/statement?since=&cursor=&limit=,
// for reconciliation: the trades paid at or after since (RFC 3339; every
// paid trade without it), possibly refunded since, in the order of their
// payment time and trade number; at most limit of them (1..
// StatementPageMax, default StatementPageMax). Next is the cursor of the
// next page, empty on the last one: a day's statement of a big sale is
// read page by page, never as one answer.
type Statement struct {
	Channel string  `json:"channel"`
	Trades  []Trade `json:"trades"`
	Next    string  `json:"next,omitempty"`
}

// StatementPageMax is the most trades one page of a statement holds.
const StatementPageMax = 1000

// Error is the body of every non-2xx answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the channel API.
const (
	CodeNotFound    = "NOT_FOUND"
	CodeInvalid     = "INVALID"
	CodeUnavailable = "SYSTEM_BUSY"
	// CodeForbidden: a stub of the channels refuses what is not a
	// pressure test's (403).
	CodeForbidden = "FORBIDDEN"
	CodeState     = "TRADE_STATE_ERROR"
)
