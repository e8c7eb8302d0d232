// Package channel is the payment service's client of an external payment
// channel's HTTP API (package wire of the channel simulator, which plays
// alipay, wechat and unionpay): it implements payment.Channel for one
// channel.
package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/services/payment"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// maxBody bounds what is read of a channel's answer.
const maxBody = 4 << 20

// conns is how many connections a client keeps open to its channel: above
// the pay calls in flight at the Double-11 replay's spike, so a pay reuses
// a connection instead of opening one (a TCP and, to a real channel, a TLS
// handshake).
const conns = 64

// Client talks to one channel.
type Client struct {
	name   string
	base   string
	secret []byte
	http   *http.Client
}

// New returns the client of channel name at base URL base (the channel's
// API lives under base/name), verifying notifications with secret; each
// call is bounded by timeout.
func New(name, base, secret string, timeout time.Duration) *Client {
	return &Client{name: name, base: base + "/" + name, secret: []byte(secret), http: telemetry.NewClient(timeout, conns)}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if shadow.Is(ctx) {
		req.Header.Set(wire.PressureTestHeader, "1")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %w", c.name, path, err, payment.ErrUnavailable)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: %v: %w", c.name, path, err, payment.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.Error
		_ = json.Unmarshal(b, &e)
		kind := payment.ErrUnavailable
		switch resp.StatusCode {
		case http.StatusNotFound:
			kind = payment.ErrNotFound
		case http.StatusBadRequest:
			kind = payment.ErrInvalid
		case http.StatusConflict:
			kind = payment.ErrConflict
		}
		return fmt.Errorf("%s %s: %d %s %s: %w", c.name, path, resp.StatusCode, e.Code, e.Message, kind)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: malformed answer: %v: %w", c.name, path, err, payment.ErrUnavailable)
	}
	return nil
}

// Create opens the trade of p.
func (c *Client) Create(ctx context.Context, p payment.Payment) (payment.Trade, error) {
	var t wire.Trade
	err := c.do(ctx, http.MethodPost, "/payments", wire.CreatePayment{
		MerchantRef: strconv.FormatInt(p.ID, 10), Amount: p.Amount, Subject: "order " + strconv.FormatInt(p.OrderID, 10),
	}, &t)
	if err != nil {
		return payment.Trade{}, err
	}
	return trade(t)
}

// Query returns the trade of a payment.
func (c *Client) Query(ctx context.Context, paymentID int64) (payment.Trade, error) {
	var t wire.Trade
	if err := c.do(ctx, http.MethodGet, "/payments?merchant_ref="+url.QueryEscape(strconv.FormatInt(paymentID, 10)), nil, &t); err != nil {
		return payment.Trade{}, err
	}
	return trade(t)
}

// Refund refunds amount of a paid trade, idempotently by refundID.
func (c *Client) Refund(ctx context.Context, tradeNo string, refundID, amount int64) (string, error) {
	var r wire.Refund
	err := c.do(ctx, http.MethodPost, "/refunds", wire.RefundRequest{
		TradeNo: tradeNo, RefundRef: strconv.FormatInt(refundID, 10), Amount: amount,
	}, &r)
	return r.RefundNo, err
}

// Statement hands each page of the channel's statement of trades paid at
// or after since to each, following the channel's cursors.
func (c *Client) Statement(ctx context.Context, since time.Time, each func([]payment.Trade) error) error {
	q := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}}
	for {
		var st wire.Statement
		if err := c.do(ctx, http.MethodGet, "/statement?"+q.Encode(), nil, &st); err != nil {
			return err
		}
		page := make([]payment.Trade, 0, len(st.Trades))
		for _, t := range st.Trades {
			pt, err := trade(t)
			if err != nil {
				return err
			}
			page = append(page, pt)
		}
		if err := each(page); err != nil {
			return err
		}
		if st.Next == "" {
			return nil
		}
		if st.Next == q.Get("cursor") || len(st.Trades) == 0 {
			return fmt.Errorf("%s statement: cursor %q does not move: %w", c.name, st.Next, payment.ErrUnavailable)
		}
		q.Set("cursor", st.Next)
	}
}

// Notification verifies a callback and returns the trade it reports.
func (c *Client) Notification(body []byte, signature string) (payment.Trade, error) {
	if !wire.Verify(c.secret, body, signature) {
		return payment.Trade{}, fmt.Errorf("%s notification: %w", c.name, payment.ErrUnauthenticated)
	}
	var n wire.Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return payment.Trade{}, fmt.Errorf("%s notification: %v: %w", c.name, err, payment.ErrInvalid)
	}
	if n.Channel != c.name {
		return payment.Trade{}, fmt.Errorf("%s notification: %w: it names channel %q", c.name, payment.ErrInvalid, n.Channel)
	}
	paidAt := n.PaidAt
	t, err := trade(wire.Trade{TradeNo: n.TradeNo, MerchantRef: n.MerchantRef, Amount: n.Amount, Status: n.Status, PaidAt: &paidAt})
	t.PressureTest = n.PressureTest
	return t, err
}

func trade(t wire.Trade) (payment.Trade, error) {
	id, err := strconv.ParseInt(t.MerchantRef, 10, 64)
	if err != nil {
		return payment.Trade{}, fmt.Errorf("trade %s: merchant_ref %q: %w", t.TradeNo, t.MerchantRef, payment.ErrInvalid)
	}
	out := payment.Trade{
		TradeNo: t.TradeNo, PaymentID: id, Amount: t.Amount, Status: payment.TradeStatus(t.Status),
		PayURL: t.PayURL, Refunded: t.Refunded,
	}
	if t.PaidAt != nil {
		out.PaidAt = *t.PaidAt
	}
	return out, nil
}
