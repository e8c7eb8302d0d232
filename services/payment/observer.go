package payment

import "context"

// Observer hears of what operators chart: a payment reaching a final
// state, money going back, a channel's callback handled. The service calls
// it after the ledger recorded the change and once per change (the
// ledger's conditional updates decide which of several concurrent settlers
// made it), so counts built on it add up however callbacks, the sweep and
// reconciliation race. services/payment/app/metrics.go implements it with
// Prometheus; the domain imports no adapter. Its methods must be quick and
// safe for concurrent use. ctx is the work's own: a pressure test's
// (platform/shadow) is counted apart from real payments.
type Observer interface {
	// Settled reports that a payment through channel entered status,
	// StatusSucceeded or StatusFailed.
	Settled(ctx context.Context, channel string, status Status)
	// Refunded reports that channel confirmed a refund of kind.
	Refunded(ctx context.Context, channel string, kind RefundKind)
	// Callback reports how a callback from channel was handled; channel
	// is empty when it names no configured channel, so that a caller
	// inventing names cannot grow the set of label values.
	Callback(ctx context.Context, channel string, result CallbackResult)
	// Reconciled reports n differences of kind that reconciliation found
	// on channel's statement.
	Reconciled(ctx context.Context, channel string, kind Difference, n int)
	// Swept reports what a sweep did.
	Swept(ctx context.Context, rep SweepReport)
}

// RefundKind says why money went back.
type RefundKind string

// The refund kinds.
const (
	// RefundBuyer is one of an order's refunds (line by line or in full).
	RefundBuyer RefundKind = "buyer"
	// RefundDuplicate is money that arrived for an order another payment
	// had paid already: the buyer paid twice, through two channels.
	RefundDuplicate RefundKind = "duplicate"
	// RefundLate is money that arrived for an order that had expired or
	// been cancelled meanwhile.
	RefundLate RefundKind = "late"
	// RefundRefused is money the order refused for a reason lost to a
	// crash between the order's answer and the refund's record.
	RefundRefused RefundKind = "refused"
)

// Refund reasons the service records; refundKind reads them back.
const (
	reasonOrderRefund = "order refund"
	reasonNotPayable  = "order not payable"
	// reasonOrderState precedes the state of an order that refused the
	// money ("order EXPIRED").
	reasonOrderState = "order "
)

// refundKind classifies a refund by the reason the service recorded for
// it. The reason is stored with the refund, so a refund resumed after a
// crash keeps the kind it was made with.
func refundKind(reason string) RefundKind {
	switch reason {
	case reasonOrderRefund:
		return RefundBuyer
	case reasonNotPayable:
		return RefundRefused
	case reasonOrderState + OrderPaid:
		return RefundDuplicate
	default:
		return RefundLate
	}
}

// CallbackResult is how a channel's callback was handled.
type CallbackResult string

// The callback results.
const (
	// CallbackAccepted moved its payment to SUCCEEDED.
	CallbackAccepted CallbackResult = "accepted"
	// CallbackDuplicate found its payment settled already: a repeated
	// delivery, a replay, or the sweep or reconciliation came first.
	CallbackDuplicate CallbackResult = "duplicate"
	// CallbackWaiting reported a trade still waiting for the buyer.
	CallbackWaiting CallbackResult = "waiting"
	// CallbackNotPaid reported a trade in another state than paid (closed,
	// refunded, unknown to this code): it settles nothing.
	CallbackNotPaid CallbackResult = "not_paid"
	// CallbackBadSignature did not verify.
	CallbackBadSignature CallbackResult = "bad_signature"
	// CallbackMalformed verified but could not be read, or named another
	// channel.
	CallbackMalformed CallbackResult = "malformed"
	// CallbackUnknownPayment named no payment of the ledger.
	CallbackUnknownPayment CallbackResult = "unknown_payment"
	// CallbackMismatch disagreed with the ledger on amount, channel or
	// trade number.
	CallbackMismatch CallbackResult = "mismatch"
	// CallbackUnknownChannel came for a channel not configured.
	CallbackUnknownChannel CallbackResult = "unknown_channel"
	// CallbackFailed could not be settled now (the ledger or the order
	// service failed); the channel delivers it again.
	CallbackFailed CallbackResult = "error"
)

// nopObserver is the Observer of a service configured without one.
type nopObserver struct{}

func (nopObserver) Settled(context.Context, string, Status)             {}
func (nopObserver) Refunded(context.Context, string, RefundKind)        {}
func (nopObserver) Callback(context.Context, string, CallbackResult)    {}
func (nopObserver) Reconciled(context.Context, string, Difference, int) {}
func (nopObserver) Swept(context.Context, SweepReport)                  {}
