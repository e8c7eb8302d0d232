package gateway

import (
	"io"
	"net/http"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
)

// paymentRoutes registers the payment endpoints of docs/api.md; user and write
// are the specs of the user routes that read and that write.
func (g *Gateway) paymentRoutes(user, write routeSpec) {
	api := routeLimit
	g.route("POST /api/v1/orders/{order_id}/pay", write, g.pay)
	g.route("GET /api/v1/payments/{payment_id}", user, g.getPayment)
	// Channels carry no token: the payment service checks each
	// notification's HMAC signature instead.
	g.route("POST /api/v1/payments/callbacks/{channel}", routeSpec{access: public, limit: api}, g.paymentCallback)
	g.route("PUT /admin/v1/channels/{channel}", adminRoute, g.updateChannel)
}

type payRequest struct {
	Channel *string `json:"channel"`
}

// maxChannelName bounds channel names in paths and bodies.
const maxChannelName = 32

// channelOf returns the channel named in r's path: a name of visible
// ASCII, as every channel's is; any other names no channel.
func channelOf(r *http.Request) (string, error) {
	channel := r.PathValue("channel")
	if !visibleASCII(channel, maxChannelName) {
		return "", errorf(errcode.NotFound, "no such channel")
	}
	return channel, nil
}

// maxSignature bounds a notification's signature: a channel signs with
// 64 hex digits (HMAC-SHA256).
const maxSignature = 128

// errBadSignature answers a notification whose signature cannot be one,
// as payment answers one that does not verify.
var errBadSignature = errorf(errcode.Unauthenticated, "the notification's X-Signature does not verify")

func (g *Gateway) pay(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("order_id", r.PathValue("order_id"))
	if err != nil {
		return err
	}
	var req payRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	// Without a preference the router chooses.
	channel := "auto"
	if req.Channel != nil {
		var f fields
		channel = f.text("channel", req.Channel, maxChannelName)
		if f.err != nil {
			return f.err
		}
	}
	caller := callerOf(r.Context()).UserID
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	p, err := g.opts.Payment.Pay(ctx, &paymentv1.PayRequest{OrderId: id, UserId: caller, Channel: channel})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPayment(p))
	return nil
}

// getPayment answers one of the caller's payments; like orders, the
// owner is checked downstream and again here.
func (g *Gateway) getPayment(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("payment_id", r.PathValue("payment_id"))
	if err != nil {
		return err
	}
	caller := callerOf(r.Context()).UserID
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	p, err := g.opts.Payment.GetPayment(ctx, &paymentv1.GetPaymentRequest{PaymentId: id, UserId: caller})
	if err != nil {
		return err
	}
	if p.GetUserId() != caller {
		return errorf(errcode.Forbidden, "this payment belongs to another user")
	}
	writeJSON(w, http.StatusOK, viewPayment(p))
	return nil
}

type callbackResponse struct {
	Status string `json:"status"`
}

// paymentCallback hands a channel's notification, raw, to payment: the
// signature covers the exact bytes, so the body is not decoded here.
func (g *Gateway) paymentCallback(w http.ResponseWriter, r *http.Request) error {
	channel, err := channelOf(r)
	if err != nil {
		return err
	}
	signature := r.Header.Get("X-Signature")
	if signature != "" && !visibleASCII(signature, maxSignature) {
		return errBadSignature
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	if _, err := g.opts.Payment.HandleCallback(ctx, &paymentv1.CallbackRequest{
		Channel: channel, Body: body, Signature: signature,
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, callbackResponse{Status: "OK"})
	return nil
}

type updateChannelRequest struct {
	Weight  *int64 `json:"weight"`
	Enabled *bool  `json:"enabled"`
}

func (g *Gateway) updateChannel(w http.ResponseWriter, r *http.Request) error {
	channel, err := channelOf(r)
	if err != nil {
		return err
	}
	var req updateChannelRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	weight := f.int("weight", req.Weight, 0, 1_000_000)
	if req.Enabled == nil {
		f.fail("enabled", "is required")
	}
	if f.err != nil {
		return f.err
	}
	ctx, cancel := g.callCtx(r.Context())
	defer cancel()
	c, err := g.opts.Payment.UpdateChannel(ctx, &paymentv1.UpdateChannelRequest{
		Channel: channel, Weight: weight, Enabled: *req.Enabled,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Channel{
		Channel: c.GetName(), Weight: c.GetWeight(), Enabled: c.GetEnabled(), Breaker: c.GetBreaker(),
		SuccessRate: c.GetSuccessRate(), LatencyMS: c.GetLatencyMs(),
	})
	return nil
}

func viewPayment(p *paymentv1.Payment) api.Payment {
	return api.Payment{
		PaymentID: formatID(p.GetPaymentId()),
		OrderID:   formatID(p.GetOrderId()),
		Channel:   p.GetChannel(),
		Amount:    p.GetAmount(),
		Status:    strings.TrimPrefix(p.GetStatus().String(), "PAYMENT_STATUS_"),
		PayURL:    p.GetPayUrl(),
	}
}
