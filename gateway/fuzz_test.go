package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
)

// fuzzRoute is a route that reads what its caller sends: a JSON body,
// maybe an id in its path ({id}) and an Idempotency-Key.
type fuzzRoute struct {
	method, path string
	role         string // "user", "admin" or "" (no token)
	seed         string // a body the route takes
}

// fuzzRoutes are the routes of docs/api.md that read a body or an id
// from their path.
var fuzzRoutes = []fuzzRoute{
	{http.MethodPost, "/api/v1/seckill/orders", "user", `{"activity_id":"7","quantity":1}`},
	{http.MethodPost, "/api/v1/orders", "user", `{"items":[{"sku_id":"1","quantity":2}],"coupon_id":"3"}`},
	{http.MethodPost, "/api/v1/orders/quote", "user", `{"items":[{"sku_id":"1","quantity":2}]}`},
	{http.MethodPost, "/api/v1/orders/{id}/pay", "user", `{"channel":"auto"}`},
	{http.MethodPost, "/api/v1/orders/{id}/cancel", "user", ``},
	{http.MethodPost, "/api/v1/orders/{id}/refunds", "user", `{"lines":[{"line_id":"1","quantity":1}],"reason":"broken"}`},
	{http.MethodPost, "/api/v1/coupons/{id}/claim", "user", ``},
	{http.MethodPost, "/api/v1/payments/callbacks/{id}", "", `{"trade_no":"t1","status":"SUCCESS"}`},
	{http.MethodPost, "/api/v1/dev/token", "", `{"user_id":"5","role":"user"}`},
	{http.MethodPut, "/admin/v1/channels/{id}", "admin", `{"enabled":true,"weight":10}`},
	{http.MethodPost, "/admin/v1/products", "admin", `{"title":"t","price":100,"stock":1}`},
	{http.MethodPost, "/admin/v1/activities", "admin", `{"sku_id":"1","price":100,"stock":10,"per_user_limit":1,"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z"}`},
	{http.MethodPost, "/admin/v1/load-test-tokens", "admin", `{"user_id":"5"}`},
	{http.MethodPost, "/admin/v1/promotions", "admin", `{"name":"p","kind":"FULL_REDUCTION","threshold":1000,"discount":100,"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z"}`},
	{http.MethodPost, "/admin/v1/coupon-templates", "admin", `{"name":"c","discount":100,"threshold":1000,"total":10}`},
	// The reads that take an id from their path.
	{http.MethodGet, "/api/v1/products/{id}", "", ``},
	{http.MethodGet, "/api/v1/activities/{id}", "", ``},
	{http.MethodGet, "/api/v1/activities/{id}/challenge", "user", ``},
	{http.MethodGet, "/api/v1/orders/{id}", "user", ``},
	{http.MethodGet, "/api/v1/payments/{id}", "user", ``},
}

// FuzzBodiesGetADocumentedAnswer sends what a hostile caller might to
// every route that reads a body or a path id: any bytes as the body, any string as the
// path's id and as the Idempotency-Key and the device id. Whatever it
// sends, the gateway answers with the API's error body and a code of the
// error table at that code's status, never 500; and a request refused as
// INVALID_ARGUMENT reaches no service, so it changed nothing. Every
// downstream is a dead address, so what passes validation is answered
// UNAVAILABLE. `make test` runs the seeds; `go test ./gateway -run '^$'
// -fuzz FuzzBodiesGetADocumentedAnswer -fuzztime 300000x` explores (a
// count, not a duration: docs/testing.md says why).
func FuzzBodiesGetADocumentedAnswer(f *testing.F) {
	for i, r := range fuzzRoutes {
		for _, body := range []string{
			r.seed, "", "{}", "null", "[]", `"x"`, "{", `{"a":1}{"b":2}`,
			strings.Replace(r.seed, "1", "-1", 1), strings.Replace(r.seed, "1", "1e400", 1),
			strings.Replace(r.seed, "1", `"1"`, 1), strings.Replace(r.seed, `"1"`, "1", 1),
			strings.Replace(r.seed, "1", "99999999999999999999", 1), strings.Replace(r.seed, "1", "0.5", 1),
			strings.Replace(r.seed, "t", "\x00\xff\u2028", 1),
		} {
			f.Add(uint8(i), "3", "key-1", "dev-1", []byte(body))
		}
		f.Add(uint8(i), "-1", "", "", []byte(r.seed))
		f.Add(uint8(i), "99999999999999999999", strings.Repeat("k", 200), "d d", []byte(r.seed))
		f.Add(uint8(i), "%00", "k\u00e9y", "\u00e9", []byte(r.seed))
		// Bytes that are not UTF-8, in the path and the headers: a
		// protobuf string must be UTF-8, so passed on they would fail to
		// serialize (the first the review found: a callback's channel).
		f.Add(uint8(i), "\xff", "k\xffy", "\xfe", []byte(r.seed))
		// A path the mux would clean (/orders/./cancel into
		// /orders/cancel, which takes GET only): the first input the
		// fuzzer failed on, now a 404 as every unclean path is.
		f.Add(uint8(i), ".", "0", "0", []byte("0"))
	}

	var payments atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		payments.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var unsendable atomic.Int64
	cc, err := rpc.Dial(deadTarget, grpc.WithChainUnaryInterceptor(count, checkSendable(&unsendable)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { cc.Close() })
	tg := MustGateway(f, gatewayConfig{opts: gateway.Options{
		Payment: paymentv1.NewPaymentServiceClient(cc), DevTokens: true,
	}})
	tokens := map[string]string{"user": tg.token(f, 5, "user"), "admin": tg.token(f, 6, "admin")}

	f.Fuzz(func(t *testing.T, route uint8, id, key, device string, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		hr, err := http.NewRequest(r.method, tg.url+strings.Replace(r.path, "{id}", url.PathEscape(id), 1), strings.NewReader(string(body)))
		if err != nil { // the method is fixed and the id escaped: the test's own fault
			t.Fatal(err)
		}
		if tok := tokens[r.role]; tok != "" {
			hr.Header.Set("Authorization", "Bearer "+tok)
		}
		hr.Header.Set("Content-Type", "application/json")
		// What a client can put in a header at all: no control bytes.
		for name, v := range map[string]string{"Idempotency-Key": key, api.DeviceHeader: device, "X-Signature": key} {
			if v = headerValue(v); v != "" {
				hr.Header.Set(name, v)
			}
		}
		before, unsent := tg.calls()+payments.Load(), tg.unsendable.Load()+unsendable.Load()
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatalf("%s %s: no answer: %v", r.method, hr.URL.Path, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", r.method, hr.URL.Path, err)
		}
		if n := tg.unsendable.Load() + unsendable.Load() - unsent; n > 0 {
			t.Fatalf("%s %s: %d requests sent downstream would not serialize", r.method, hr.URL.Path, n)
		}
		if resp.StatusCode < 400 {
			return
		}
		var e apiError
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s: %d with a body that is not the API's error: %q", r.method, hr.URL.Path, resp.StatusCode, raw)
		}
		code := errcode.Code(e.Error.Code)
		switch want := gateway.StatusOf(code); {
		case resp.StatusCode == http.StatusInternalServerError:
			t.Fatalf("%s %s with body %q: 500 %s", r.method, hr.URL.Path, body, raw)
		case resp.StatusCode != want && !(code == errcode.InvalidArgument && otherInvalid[resp.StatusCode]):
			t.Fatalf("%s %s: %d with code %s, whose status is %d", r.method, hr.URL.Path, resp.StatusCode, code, want)
		}
		if code == errcode.InvalidArgument {
			if after := tg.calls() + payments.Load(); after != before {
				t.Fatalf("%s %s with body %q: INVALID_ARGUMENT after %d downstream calls", r.method, hr.URL.Path, body, after-before)
			}
		}
	})
}

// FuzzForgedTokensAreRefused sends any Authorization header to a user's
// route and an admin's: the fuzzer cannot sign a token, so every one is
// refused UNAUTHENTICATED (401), never a 500, before any service is
// called, unless it is the token as signed, which must get in. The seeds
// hold that token and the forgeries docs/gateway.md lists: no signature,
// alg none, another algorithm, a token signed with another key, an
// expired one, and the valid token altered by one byte.
func FuzzForgedTokensAreRefused(f *testing.F) {
	tg := MustGateway(f, gatewayConfig{})
	// The same string in every process of a fuzzing run (its workers
	// each start a gateway): a fixed subject and expiry, not the clock's.
	valid := signToken(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": "5", "role": "admin", "exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
	})
	header, payload, _ := strings.Cut(valid, ".")
	payload, _, _ = strings.Cut(payload, ".")
	for _, a := range []string{
		"Bearer " + valid, " bearer " + valid + "\t",
		"", "Bearer", "Bearer ", "bearer x", "Basic dXNlcjpwYXNz", "Bearer " + header + "." + payload,
		"Bearer " + header + "." + payload + ".",
		"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
		"Bearer " + valid[:len(valid)-1] + "A", "Bearer " + strings.ToUpper(valid), "Bearer " + valid + valid,
		"Bearer " + signToken(f, jwt.SigningMethodHS384, testSecret, jwt.MapClaims{"sub": "5", "role": "admin", "exp": tg.clock.Now().Add(time.Hour).Unix()}),
		"Bearer " + signToken(f, jwt.SigningMethodHS256, []byte("another key of thirty-two bytes!!"), jwt.MapClaims{"sub": "5", "role": "admin", "exp": tg.clock.Now().Add(time.Hour).Unix()}),
		"Bearer " + signToken(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "5", "role": "admin", "exp": tg.clock.Now().Add(-time.Minute).Unix()}),
	} {
		f.Add(a)
	}
	paths := []string{"/api/v1/orders/3", "/admin/v1/load-test-tokens"}
	f.Fuzz(func(t *testing.T, authorization string) {
		authorization = headerValue(authorization)
		// The server trims a header's outer spaces and tabs; the scheme's
		// case does not matter. The token as signed must get in: the
		// refusals below are of forgeries, not of every token.
		scheme, token, _ := strings.Cut(strings.Trim(authorization, " \t"), " ")
		signed := strings.EqualFold(scheme, "Bearer") && token == valid
		for i, path := range paths {
			method := []string{http.MethodGet, http.MethodPost}[i]
			before := tg.calls()
			got := tg.do(t, request{method: method, path: path, body: `{"user_id":"5"}`, header: map[string]string{"Authorization": authorization}})
			if signed {
				if got.status == http.StatusUnauthorized {
					t.Fatalf("%s %s with the signed token: refused %s", method, path, got.body)
				}
				continue
			}
			if got.status != http.StatusUnauthorized || got.code(t) != "UNAUTHENTICATED" {
				t.Fatalf("%s %s with Authorization %q: %d %s, want 401 UNAUTHENTICATED", method, path, authorization, got.status, got.body)
			}
			if n := tg.calls() - before; n != 0 {
				t.Fatalf("%s %s with Authorization %q: %d downstream calls", method, path, authorization, n)
			}
		}
	})
}

// otherInvalid are the statuses besides 400 that docs/api.md gives
// INVALID_ARGUMENT: a body too large (413) and a method the path does not
// take (405, with Allow).
var otherInvalid = map[int]bool{http.StatusRequestEntityTooLarge: true, http.StatusMethodNotAllowed: true}

// headerValue keeps of v what a header value may hold (RFC 9110,
// field-value): visible bytes, spaces and tabs, and bytes 0x80-0xFF, which
// need not be UTF-8.
func headerValue(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c >= 0x20 || c == '\t') && c != 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}
