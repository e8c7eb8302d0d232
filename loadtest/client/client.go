// Package client speaks the gateway's HTTP API (docs/api.md) for the load
// test: JSON requests with a bearer token, non-2xx answers as *APIError,
// the admin calls a replay makes, and the polite wait on a 429.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/shadow"
)

// Client speaks the gateway's HTTP API (docs/api.md).
type Client struct {
	base string
	http *http.Client
	// mark, when set, is the load-test token every request carries in
	// X-Pressure-Test (Marked).
	mark string
	// seckillBodies is shared with the Marked copies.
	seckillBodies *encodedBodies
}

// New returns a client for the gateway at base (e.g.
// http://127.0.0.1:8080) whose connection pool fits maxConns concurrent
// requests, so a burst does not spend its time opening connections.
func New(base string, maxConns int) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	// A base with a trailing slash (TARGET=http://localhost/) would make
	// every path start with //, which the gateway answers 404.
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, seckillBodies: &encodedBodies{}}
}

// Marked returns a client on the same connections whose every request
// carries X-Pressure-Test: token, a load-test token (MintLoadTestToken):
// pressure-test traffic, served in shadow storage (docs/pressure-test.md).
// The channel simulator takes the header on its pay URLs too, so a marked
// buyer confirms in the channel's shadow twin.
func (c *Client) Marked(token string) *Client {
	m := *c
	m.mark = token
	return &m
}

// PressureTest reports whether the client's requests are marked.
func (c *Client) PressureTest() bool { return c.mark != "" }

// MintLoadTestToken asks the gateway for a load-test token valid for ttl
// (admin token; POST /admin/v1/load-test-tokens).
func (c *Client) MintLoadTestToken(ctx context.Context, admin string, ttl time.Duration) (string, time.Time, error) {
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	_, err := c.Do(ctx, http.MethodPost, "/admin/v1/load-test-tokens", admin, nil,
		map[string]any{"ttl_seconds": int64(ttl.Seconds())}, &out)
	return out.Token, out.ExpiresAt, err
}

// APIError is a non-2xx answer of the gateway.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Do sends a JSON request and decodes a 2xx answer into out (when not nil).
// Non-2xx answers are returned as *APIError. A path that is a whole URL
// (a channel's pay URL) is requested as it is.
func (c *Client) Do(ctx context.Context, method, path, token string, headers map[string]string, in, out any) (int, error) {
	url := c.base + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		url = path
	}
	var body io.Reader
	if b, ok := in.(encoded); ok {
		body = bytes.NewReader(b)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if c.mark != "" {
		req.Header.Set(shadow.Header, c.mark)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var e api.ErrorBody
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, RetryAfter: resp.Header.Get("Retry-After")}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// DevToken asks the gateway's dev endpoint for a token.
func (c *Client) DevToken(ctx context.Context, userID int64, role string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	_, err := c.Do(ctx, http.MethodPost, "/api/v1/dev/token", "", nil,
		map[string]string{"user_id": strconv.FormatInt(userID, 10), "role": role}, &out)
	return out.Token, err
}

// CreateProduct creates a product (admin token).
func (c *Client) CreateProduct(ctx context.Context, admin, title string, price, stock int64) (string, error) {
	var out struct {
		SKUID string `json:"sku_id"`
	}
	_, err := c.Do(ctx, http.MethodPost, "/admin/v1/products", admin, nil,
		map[string]any{"title": title, "price": price, "stock": stock}, &out)
	return out.SKUID, err
}

// CreateActivity creates a flash sale (admin token); its stock is in Redis
// when this returns.
func (c *Client) CreateActivity(ctx context.Context, admin string, a api.Activity) (string, error) {
	var out struct {
		ActivityID string `json:"activity_id"`
	}
	body := map[string]any{
		"sku_id": a.SKUID, "price": a.Price, "stock": a.Stock, "per_user_limit": a.PerUserLimit,
		"starts_at": a.StartsAt.Format(time.RFC3339Nano), "ends_at": a.EndsAt.Format(time.RFC3339Nano),
	}
	if a.ChallengeRequired {
		body["challenge_required"] = true
	}
	_, err := c.Do(ctx, http.MethodPost, "/admin/v1/activities", admin, nil, body, &out)
	return out.ActivityID, err
}

// Challenge fetches a challenge for the caller's buy of activity, from
// device ("" for none).
func (c *Client) Challenge(ctx context.Context, token, activityID, device string) (api.Challenge, error) {
	var out api.Challenge
	var headers map[string]string
	if device != "" {
		headers = map[string]string{api.DeviceHeader: device}
	}
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/activities/"+activityID+"/challenge", token, headers, nil, &out)
	return out, err
}

// ListCoupons lists the caller's coupons, the 200 newest.
func (c *Client) ListCoupons(ctx context.Context, token string) ([]api.Coupon, error) {
	var out api.Coupons
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/coupons", token, nil, nil, &out)
	return out.Coupons, err
}

// GetProduct reads a product with its stock.
func (c *Client) GetProduct(ctx context.Context, skuID string) (api.Product, error) {
	var p api.Product
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/products/"+skuID, "", nil, nil, &p)
	return p, err
}

// GetActivity reads an activity with its remaining stock.
func (c *Client) GetActivity(ctx context.Context, id string) (api.Activity, error) {
	var a api.Activity
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/activities/"+id, "", nil, nil, &a)
	return a, err
}

// Seckill tries to buy quantity units of activity, with the headers
// given besides the key (a device, a solved challenge: Proof.Headers).
func (c *Client) Seckill(ctx context.Context, token, activityID string, quantity int64, idemKey string, headers map[string]string) (api.SeckillAccepted, error) {
	var out api.SeckillAccepted
	h := make(map[string]string, len(headers)+1)
	maps.Copy(h, headers)
	h["Idempotency-Key"] = idemKey
	body, err := c.seckillBodies.of(seckillBody{ActivityID: activityID, Quantity: quantity})
	if err != nil {
		return out, err
	}
	_, err = c.Do(ctx, http.MethodPost, "/api/v1/seckill/orders", token, h, body, &out)
	return out, err
}

// seckillBody is a buy's request body.
type seckillBody struct {
	ActivityID string `json:"activity_id"`
	Quantity   int64  `json:"quantity"`
}

// encoded is a request body already in JSON, which Do sends as it is.
type encoded []byte

// encodedBodies keeps each buy body encoded once: a sale's buys all send
// one of a few bodies, the generator's most sent, and encoding each anew
// took 0.3 s of the load generator's 4.6 s in a cost.yaml profile, on
// the cores the platform shares.
type encodedBodies struct{ m sync.Map } // seckillBody → encoded

func (e *encodedBodies) of(b seckillBody) (encoded, error) {
	if v, ok := e.m.Load(b); ok {
		return v.(encoded), nil
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	v, _ := e.m.LoadOrStore(b, encoded(raw))
	return v.(encoded), nil
}

// GetOrder reads one of the caller's orders.
func (c *Client) GetOrder(ctx context.Context, token, orderID string) (api.Order, error) {
	var o api.Order
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/orders/"+orderID, token, nil, nil, &o)
	return o, err
}

// ListOrders lists the caller's orders.
func (c *Client) ListOrders(ctx context.Context, token string) ([]api.Order, error) {
	var out struct {
		Orders []api.Order `json:"orders"`
	}
	_, err := c.Do(ctx, http.MethodGet, "/api/v1/orders", token, nil, nil, &out)
	return out.Orders, err
}
