package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// deadTarget is a gRPC target nothing listens on: tests whose requests
// must never leave the gateway point it there and count the calls.
const deadTarget = "127.0.0.1:1"

var testSecret = []byte("0123456789abcdef0123456789abcdef-gateway-tests")

// testGateway is a gateway served over real HTTP, whose downstream gRPC
// calls are counted by a client interceptor.
type testGateway struct {
	gw    *gateway.Gateway
	url   string
	clock *clock.Manual
	// users offsets the user ids a test names (101 for alice), so each
	// gateway's buyers are new to the shared stack: a test run again
	// (-count) meets neither its earlier orders nor its idempotency keys
	// nor its purchase limits.
	users          int64
	productCalls   atomic.Int64
	orderCalls     atomic.Int64
	marketingCalls atomic.Int64
	// unsendable counts the downstream requests that would not
	// serialize (checkSendable).
	unsendable atomic.Int64
}

// checkSendable is a client interceptor that refuses, as gRPC would, a
// request that cannot be serialized (a protobuf string that is not UTF-8)
// and counts it in unsendable. gRPC serializes a request only once it has
// a connection, so a call to deadTarget would fail UNAVAILABLE first and
// hide it.
func checkSendable(unsendable *atomic.Int64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if m, ok := req.(proto.Message); ok {
			if _, err := proto.Marshal(m); err != nil {
				unsendable.Add(1)
				return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// calls is the number of downstream calls so far.
func (tg *testGateway) calls() int64 {
	return tg.productCalls.Load() + tg.orderCalls.Load() + tg.marketingCalls.Load()
}

// gatewayConfig says where the gateway's downstreams are and how it is
// set up; Options.Product, Order, Marketing and JWTSecret are filled in.
type gatewayConfig struct {
	productAddr, orderAddr, marketingAddr string
	opts                                  gateway.Options
	// afterCall, when set, runs after each downstream call has been
	// answered and before the gateway sees the answer.
	afterCall func(method string)
	// lose, when set, may replace a downstream call's answer with an
	// error, as a lost answer would be (the call was made and did its
	// work, its answer never came).
	lose func(method string) error
}

// MustGateway starts a gateway for cfg with a manual clock set to now.
func MustGateway(tb testing.TB, cfg gatewayConfig) *testGateway {
	tb.Helper()
	tg := &testGateway{clock: clock.NewManual(time.Now()), users: gatewaysStarted.Add(1) * 1_000_000}
	dial := func(target string, calls *atomic.Int64) *grpc.ClientConn {
		if target == "" {
			target = deadTarget
		}
		count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			calls.Add(1)
			err := invoker(ctx, method, req, reply, cc, opts...)
			if cfg.afterCall != nil {
				cfg.afterCall(method)
			}
			if cfg.lose != nil {
				if lost := cfg.lose(method); lost != nil {
					return lost
				}
			}
			return err
		}
		cc, err := rpc.Dial(target, grpc.WithChainUnaryInterceptor(count, checkSendable(&tg.unsendable)))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { cc.Close() })
		return cc
	}
	opts := cfg.opts
	opts.Product = productv1.NewProductServiceClient(dial(cfg.productAddr, &tg.productCalls))
	opts.Order = orderv1.NewOrderServiceClient(dial(cfg.orderAddr, &tg.orderCalls))
	opts.Marketing = marketingv1.NewMarketingServiceClient(dial(cfg.marketingAddr, &tg.marketingCalls))
	opts.JWTSecret = testSecret
	if opts.Clock == nil {
		opts.Clock = tg.clock
	}
	gw, err := gateway.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	srv.Config = telemetry.NewServer(gw) // the timeouts the gateway serves with
	srv.Start()
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() {
		if n := tg.unsendable.Load(); n > 0 {
			tb.Errorf("the gateway sent %d requests downstream that would not serialize", n)
		}
	})
	tg.gw, tg.url = gw, srv.URL
	return tg
}

// MustRedis returns a client of the stack's Redis.
func MustRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatal(err)
	}
	return rdb
}

// cutRedis is a client of the stack's Redis whose connections the test
// cuts on the wire: while cut, its open connections are closed and new
// ones refused, as a Redis that went away; mended, it dials again.
type cutRedis struct {
	*redis.Client
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
	// hole, while set, is where new connections go instead: a listener
	// that takes them and never answers (hang).
	hole net.Listener
}

// MustCutRedis returns a client of the stack's Redis the test can cut.
func MustCutRedis(tb testing.TB) *cutRedis {
	tb.Helper()
	c := &cutRedis{}
	c.Client = redis.NewClient(&redis.Options{Addr: stack.RedisAddr, MaxRetries: -1, DialerRetries: 1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.cut {
				return nil, errors.New("connection refused: the test cut redis")
			}
			if c.hole != nil {
				addr = c.hole.Addr().String()
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.conns = append(c.conns, conn)
			}
			return conn, err
		}})
	tb.Cleanup(func() { c.Close() })
	return c
}

// set cuts the connections (true) or lets them be dialled again.
func (c *cutRedis) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		c.closeConns()
	}
	if !cut {
		c.hole = nil
	}
}

// hang closes the open connections and sends the new ones to a
// listener that takes them and never answers, as a Redis whose host
// went silent (a blackhole), until set(false).
func (c *cutRedis) hang(tb testing.TB) {
	tb.Helper()
	l := localstack.MustSilentListener(tb)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeConns()
	c.hole = l
}

func (c *cutRedis) closeConns() {
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// redisBackend is a Redis the gateway's shared state must work on.
type redisBackend struct {
	name string
	rdb  redis.UniversalClient
}

// MustRedisBackends returns the stack's single Redis server and its
// Redis Cluster.
func MustRedisBackends(tb testing.TB) []redisBackend {
	tb.Helper()
	return []redisBackend{{"single", MustRedis(tb)}, {"cluster", stack.RedisClusterClient(tb)}}
}

// gatewaysStarted counts the test gateways of this run, for their users.
var gatewaysStarted atomic.Int64

// user is the id the platform knows the test's user n by.
func (tg *testGateway) user(n int64) int64 { return tg.users + n }

// token signs a valid token for the test's user n and role.
func (tg *testGateway) token(tb testing.TB, n int64, role string) string {
	tb.Helper()
	return signToken(tb, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": jsonID(tg.user(n)), "role": role, "exp": tg.clock.Now().Add(time.Hour).Unix(),
	})
}

func signToken(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func jsonID(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

// request is one HTTP request to the gateway.
type request struct {
	method, path, token, body string
	header                    map[string]string
	// within, when set, is how long the client waits for the answer.
	within time.Duration
}

// answer is the gateway's answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// apiError is the API's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// code is the error code of the answer's body ("" for a success).
func (a answer) code(tb testing.TB) string {
	tb.Helper()
	if a.status < 300 {
		return ""
	}
	var e apiError
	if err := json.Unmarshal(a.body, &e); err != nil {
		tb.Fatalf("status %d: body %q is not an API error: %v", a.status, a.body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		tb.Fatalf("status %d: error body %q lacks code or message", a.status, a.body)
	}
	return e.Error.Code
}

// decode reads a 2xx answer's JSON body into v.
func (a answer) decode(tb testing.TB, v any) {
	tb.Helper()
	if a.status/100 != 2 {
		tb.Fatalf("status %d, body %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		tb.Fatalf("body %q: %v", a.body, err)
	}
}

// loadTestToken has an admin issue a load-test token (ten minutes), the
// value of X-Pressure-Test that marks a request as pressure-test traffic.
func (tg *testGateway) loadTestToken(tb testing.TB, admin string) string {
	tb.Helper()
	var issued struct{ Token string }
	tg.do(tb, request{method: http.MethodPost, path: "/admin/v1/load-test-tokens", token: admin, body: `{"ttl_seconds": 600}`}).decode(tb, &issued)
	return issued.Token
}

// do sends req.
func (tg *testGateway) do(tb testing.TB, req request) answer {
	tb.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	ctx := context.Background()
	if req.within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.within)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, tg.url+req.path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// seckill is a flash-sale buy with an idempotency key.
func seckill(token, key, body string) request {
	return request{method: http.MethodPost, path: "/api/v1/seckill/orders", token: token, body: body,
		header: map[string]string{"Idempotency-Key": key}}
}

// devMode are options with the dev token endpoint on.
func devMode() gateway.Options { return gateway.Options{DevTokens: true} }
