// Package gateway is the platform's HTTP/JSON edge (docs/api.md): a middleware
// chain on net/http (request id, tracing, access log and metrics, panic
// recovery, bearer-token auth, local and Redis-shared rate limits, body
// limits and strict JSON decoding), the routes that call the product and
// order services over gRPC with a timeout per call, and the one table that
// turns API error codes into HTTP statuses.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/telemetry"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// Options configure a Gateway. Product, Order and JWTSecret are required;
// zero values elsewhere take the defaults documented on each field.
type Options struct {
	Product productv1.ProductServiceClient
	Order   orderv1.OrderServiceClient
	// Payment serves the payment routes; nil leaves them out.
	Payment paymentv1.PaymentServiceClient
	// Marketing serves promotions and coupons; nil answers their routes
	// UNAVAILABLE.
	Marketing marketingv1.MarketingServiceClient
	// Redis holds the per-user rate limits shared by every replica, the
	// challenges' single use and the accepted keys; nil disables them.
	// The service passes its auto-pipeliner (redisclient.CoalescedBounded),
	// so concurrent buys share round trips and none waits past its
	// deadline.
	Redis redis.Cmdable
	// Logger gets the access log and failures (default: discard).
	Logger *slog.Logger
	// Clock drives token expiry, local rate limits, caches, activity
	// windows and sold-out flags (default: the wall clock).
	Clock clock.Clock
	// Registry receives the gateway's metrics and is served on /metrics
	// (default: a new telemetry registry).
	Registry *prometheus.Registry
	// Dependencies are the checks telemetry.DependenciesPath reports
	// (downstreams, Redis); /readyz does not ask them (see
	// telemetry.AdminHandler).
	Dependencies map[string]telemetry.Check
	// Ready, when not nil, says whether the replica may serve: while it
	// returns an error (its settings in Consul not read yet), /readyz
	// answers 503 and every other route UNAVAILABLE with Retry-After,
	// so a replica never serves on values an operator overrode (a sale
	// closed, an account blocked). The probes and /metrics answer.
	Ready func() error

	// JWTSecret signs and verifies HS256 bearer tokens.
	JWTSecret []byte
	// DevTokens enables POST /api/v1/dev/token, which mints a token for
	// anyone: demo and development only.
	DevTokens bool
	// DevTokenTTL is the lifetime of dev tokens (default 24h).
	DevTokenTTL time.Duration

	// RouteLimit is every API route's local token bucket; zero RPS
	// disables it.
	RouteLimit Limit
	// SeckillRouteLimit replaces RouteLimit on the seckill route; left
	// zero, the seckill route gets RouteLimit too.
	SeckillRouteLimit Limit
	// SeckillUserLimit limits each user on the flash-sale entry across
	// replicas (in Redis): the challenges, and the buys that pass the
	// sold-out flag and the sale's window; zero RPS disables it.
	SeckillUserLimit Limit
	// IPLimit limits each client address on this replica (IPv6 per
	// /64), in memory; zero RPS disables it. IPLimitKeys bounds the
	// addresses remembered (default DefaultIPLimitKeys; idle ones are
	// forgotten first). The client address is the connection's peer, or,
	// when the peer is one of TrustedProxies, read from X-Forwarded-For
	// past the trusted proxies; none are trusted by default.
	IPLimit        Limit
	IPLimitKeys    int
	TrustedProxies []netip.Prefix
	// DeviceLimit limits each device (api.DeviceHeader) on the
	// flash-sale entry (the buy and its challenge), on this replica, in
	// memory, over at most IPLimitKeys devices; zero RPS disables it.
	DeviceLimit Limit
	// Blocklist is the flash-sale entry's blocklist at start; Apply
	// replaces it (Settings.Blocklist, from Consul KV).
	Blocklist Blocklist
	// ScreenRetiredUntil retires the screen tokens issued up to it
	// (zero: none); Apply replaces it (Settings.ScreenRetiredUntil).
	ScreenRetiredUntil time.Time
	// ChallengeBits is the work a sale's challenge asks (leading zero
	// bits of a SHA-256, default DefaultChallengeBits, at most
	// MaxChallengeBits), ChallengeJitter the most a challenge's random
	// wait adds (default DefaultChallengeJitter; negative: none), and
	// ChallengeTTL how long a challenge may be used after its wait
	// (default DefaultChallengeTTL).
	ChallengeBits   int
	ChallengeJitter time.Duration
	ChallengeTTL    time.Duration
	// challengeWait, when set, replaces the uniform draw of a
	// challenge's wait (tests).
	challengeWait func(jitter time.Duration) time.Duration
	// SeckillAdmission bounds the flash-sale requests in flight on this
	// replica and WriteAdmission those of the other write routes
	// (checkout, quote, cancel, refund, pay, coupon claim), each adapting
	// to the latency its routes show; the zero value turns one off.
	SeckillAdmission, WriteAdmission AdmissionLimit
	// admissionWindow and admissionSamples tune how often the admission
	// limits move (tests shorten them).
	admissionWindow  time.Duration
	admissionSamples uint
	// UserLimitPrefix prefixes the Redis keys of per-user limits
	// (default "gw:seckill:user:").
	UserLimitPrefix string

	// SoldOutTTL is how long an activity that order reported sold out is
	// refused locally (default 1s): short, so stock released by expired
	// or cancelled orders can still be sold.
	SoldOutTTL time.Duration
	// CacheTTL is the lifetime of cached activities and products
	// (default 1s).
	CacheTTL time.Duration
	// CallTimeout bounds each downstream call (default 2s).
	CallTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 64 KiB).
	MaxBodyBytes int64
	// AccessLogRate bounds the access log's ordinary lines a second
	// (5xx and slow requests are always logged); 0 logs every request.
	// The service sets DefaultAccessLogRate.
	AccessLogRate int

	// SeckillClosed, CatalogCacheOnly and Degrade are the degrade
	// switches' initial positions (see Settings); Apply changes them at
	// run time.
	SeckillClosed, CatalogCacheOnly, DegradeAuto bool
	Degrade                                      Level
	// BreakersOpen, when set, says how many downstream breakers are open
	// now: a signal of the automatic degrade controller (RunDegrade).
	BreakersOpen func() int
	// DegradeP99Budget is the flash-sale route's p99 budget, a signal of
	// the automatic degrade controller: a second whose p99 is over it
	// (more than one answer in a hundred slower) is under pressure
	// (default 500 ms).
	DegradeP99Budget time.Duration

	// Screen, when set, serves the big screen (GET /screen and its
	// stream; RunScreen feeds it); nil leaves both routes out.
	Screen *ScreenOptions
}

// Defaults of Options.
const (
	DefaultDevTokenTTL     = 24 * time.Hour
	DefaultUserLimitPrefix = "gw:seckill:user:"
	DefaultSoldOutTTL      = time.Second
	DefaultCacheTTL        = time.Second
	DefaultCallTimeout     = 2 * time.Second
	DefaultMaxBodyBytes    = 64 << 10
	DefaultDegradeP99      = 500 * time.Millisecond
)

// acceptedKeyTTL is how long an accepted flash-sale request is remembered
// for retries: longer than any client retries, short enough that the keys
// of a day's sales clean themselves up.
const acceptedKeyTTL = 24 * time.Hour

// Gateway is the HTTP handler of the public API.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	clock   clock.Clock
	product productv1.ProductServiceClient
	order   *batchedOrders
	access  *accessLog
	auth    *authenticator
	users   *userLimiter
	ips     *ipLimiter
	devices *keyLimiter[string]
	// blocked is the flash-sale entry's blocklist in force.
	blocked atomic.Pointer[blocklist]
	// screenRetiredUntil is Settings.ScreenRetiredUntil in force.
	screenRetiredUntil atomic.Pointer[time.Time]
	challenges         *challenger
	// seckillAdmission and writeAdmission are the adaptive concurrency
	// limits of the flash-sale route and of the other write routes.
	seckillAdmission, writeAdmission *admission
	metrics                          *metrics
	soldOut                          *soldOutFlags
	accepted                         *acceptedKeys
	// placing joins concurrent repeats of one flash-sale request (same
	// activity, user and key) to the call already in flight.
	placing  singleflight.Group
	activity *cache.Loader[int64, *productv1.Activity]
	products *cache.Loader[int64, *productv1.Product]
	mux      *http.ServeMux
	handler  http.Handler

	// settingsMu guards settings and the bucket lists; the switches are
	// atomics, read on every request without the lock.
	settingsMu    sync.Mutex
	settings      Settings
	buckets       map[limitKind][]*bucket
	seckillClosed atomic.Bool
	cacheOnly     atomic.Bool
	degrade       *degrader
	// lastList is the last activity list read, the list's answer while
	// degraded.
	lastList atomic.Pointer[activitiesResponse]
	// screen is the big screen's aggregate (nil: off).
	screen *screen
}

// New returns the gateway for opts.
func New(opts Options) (*Gateway, error) {
	if opts.Product == nil || opts.Order == nil {
		return nil, errors.New("gateway: product and order clients are required")
	}
	if len(opts.JWTSecret) == 0 {
		return nil, errors.New("gateway: a JWT secret is required")
	}
	opts = withDefaults(opts)
	g := &Gateway{
		opts:    opts,
		log:     opts.Logger,
		clock:   opts.Clock,
		product: opts.Product,
		order:   newBatchedOrders(opts.Order),
		auth:    newAuthenticator(opts.JWTSecret, opts.Clock),
		users:   newUserLimiter(opts.Redis, opts.SeckillUserLimit, opts.UserLimitPrefix),
		ips:     newIPLimiter(opts.IPLimit, opts.IPLimitKeys, opts.Clock),
		devices: newKeyLimiter[string](opts.DeviceLimit, opts.IPLimitKeys, "device", opts.Clock),
		soldOut: newSoldOutFlags(opts.Clock, opts.SoldOutTTL),
		accepted: &acceptedKeys{rdb: opts.Redis, ttl: acceptedKeyTTL, timeout: opts.CallTimeout, held: newHeldMarks(opts.Clock, maxHeldMarks), log: func(ctx context.Context, msg string, args ...any) {
			opts.Logger.WarnContext(ctx, msg, args...)
		}},
		mux:     http.NewServeMux(),
		buckets: map[limitKind][]*bucket{},
		settings: Settings{
			SeckillClosed: opts.SeckillClosed, CatalogCacheOnly: opts.CatalogCacheOnly, Degrade: opts.Degrade, DegradeAuto: opts.DegradeAuto,
			Route: opts.RouteLimit, Seckill: opts.SeckillRouteLimit, User: opts.SeckillUserLimit, Blocklist: opts.Blocklist,
			ScreenRetiredUntil: opts.ScreenRetiredUntil,
		},
	}
	g.blocked.Store(newBlocklist(opts.Blocklist))
	g.screenRetiredUntil.Store(&opts.ScreenRetiredUntil)
	g.seckillClosed.Store(opts.SeckillClosed)
	g.cacheOnly.Store(opts.CatalogCacheOnly)
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if g.access, err = newAccessLog(opts.Logger, opts.Clock, float64(opts.AccessLogRate), opts.CallTimeout, opts.Registry); err != nil {
		return nil, err
	}
	if g.seckillAdmission, err = newAdmission("seckill", opts.SeckillAdmission, opts.admissionWindow, opts.admissionSamples, opts.Clock, opts.CallTimeout, opts.Registry, opts.Logger); err != nil {
		return nil, err
	}
	if g.writeAdmission, err = newAdmission("writes", opts.WriteAdmission, opts.admissionWindow, opts.admissionSamples, opts.Clock, opts.CallTimeout, opts.Registry, opts.Logger); err != nil {
		return nil, err
	}
	if g.challenges, err = newChallenger(opts); err != nil {
		return nil, err
	}
	if g.degrade, err = newDegrader(g.seckillAdmission, opts.BreakersOpen, opts.DegradeP99Budget, opts.Registry); err != nil {
		return nil, err
	}
	g.degrade.manual.Store(int32(opts.Degrade))
	g.degrade.automatic.Store(opts.DegradeAuto)
	if err := opts.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_held_marks", Help: "Accepted-key marks this replica holds until Redis takes them (RunHeldMarks).",
	}, func() float64 { return float64(g.accepted.held.size()) })); err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	if g.ips != nil {
		if err := opts.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_admission_ip_keys", Help: "Client addresses the per-address limit remembers on this replica.",
		}, func() float64 { return float64(g.ips.size()) })); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	// Activities and products never change once created, so while the
	// product service cannot answer, the last copy read (up to
	// cache.StaleMaxAge old) keeps the pages up and the sale open; an id
	// the product service says does not exist is answered NOT_FOUND for
	// cache.NegativeTTL without asking it again.
	notFound := cache.Negative{TTL: cache.NegativeTTL, Absent: func(err error) bool { return errcode.Of(err) == errcode.NotFound }}
	g.activity = cache.New(opts.CacheTTL, opts.Clock, func(ctx context.Context, id int64) (*productv1.Activity, error) {
		ctx, cancel := g.callCtx(ctx)
		defer cancel()
		return g.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: id})
	}).WithStale(cache.OnOutage(cache.StaleMaxAge)).WithNegative(notFound).WithRefreshAhead(cache.RefreshAhead)
	g.products = cache.New(opts.CacheTTL, opts.Clock, func(ctx context.Context, id int64) (*productv1.Product, error) {
		ctx, cancel := g.callCtx(ctx)
		defer cancel()
		return g.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: id})
	}).WithStale(cache.OnOutage(cache.StaleMaxAge)).WithNegative(notFound).WithRefreshAhead(cache.RefreshAhead)
	if err := opts.Registry.Register(cache.Collector(map[string][]cache.StatsSource{"activity": {g.activity}, "product": {g.products}})); err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	if opts.Screen != nil {
		g.screen = newScreen(g, *opts.Screen)
	}
	g.routes()
	g.handler = g.withRequestID(g.observe(g.recoverPanics(http.HandlerFunc(g.dispatch))))
	return g, nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Registry == nil {
		o.Registry = telemetry.NewRegistry()
	}
	if o.DevTokenTTL <= 0 {
		o.DevTokenTTL = DefaultDevTokenTTL
	}
	if o.UserLimitPrefix == "" {
		o.UserLimitPrefix = DefaultUserLimitPrefix
	}
	if o.SoldOutTTL <= 0 {
		o.SoldOutTTL = DefaultSoldOutTTL
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.DegradeP99Budget <= 0 {
		o.DegradeP99Budget = DefaultDegradeP99
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.IPLimitKeys <= 0 {
		o.IPLimitKeys = DefaultIPLimitKeys
	}
	if o.admissionWindow <= 0 {
		o.admissionWindow = admissionWindow
	}
	if o.admissionSamples == 0 {
		o.admissionSamples = admissionSamples
	}
	if o.ChallengeBits == 0 {
		o.ChallengeBits = DefaultChallengeBits
	}
	if o.ChallengeJitter == 0 {
		o.ChallengeJitter = DefaultChallengeJitter
	}
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = DefaultChallengeTTL
	}
	if o.challengeWait == nil {
		o.challengeWait = uniformWait
	}
	if o.SeckillRouteLimit == (Limit{}) {
		o.SeckillRouteLimit = o.RouteLimit
	}
	return o
}

// offAt is spec switched off from the degrade level off on.
func offAt(spec routeSpec, off Level) routeSpec {
	spec.off = off
	return spec
}

// ServeHTTP serves the API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// adminRoute is the spec of every admin route: an admin's token, the
// route's bucket and the client address's limit (routes).
var adminRoute = routeSpec{access: adminOnly, limit: routeLimit, perIP: true}

// routes registers every endpoint of docs/api.md that the gateway serves.
func (g *Gateway) routes() {
	api := routeLimit
	// What the public reaches is limited per client address too, the
	// admin routes included: the address's limit comes before
	// authentication, so a flood of forged tokens from one address is
	// refused before it costs a signature check each. An operator's own
	// address stays far below it. The channels' callbacks are not (a
	// channel's few addresses carry every buyer's notification, and money
	// must settle), and no admin route is under admission (operators must
	// be able to act in an overload).
	read := routeSpec{access: public, limit: api, perIP: true}
	user := routeSpec{access: userOnly, limit: api, perIP: true}
	write := routeSpec{access: userOnly, limit: api, perIP: true, admission: g.writeAdmission}
	if g.opts.DevTokens {
		g.route("POST /api/v1/dev/token", read, g.devToken)
	}
	g.route("POST /admin/v1/products", adminRoute, g.createProduct)
	g.route("POST /admin/v1/activities", adminRoute, g.createActivity)
	g.route("POST /admin/v1/load-test-tokens", adminRoute, g.issueLoadTestToken)
	g.route("GET /api/v1/products/{sku_id}", read, g.getProduct)
	g.route("GET /api/v1/activities", read, g.listActivities)
	g.route("GET /api/v1/activities/{activity_id}", read, g.getActivity)
	// The flash-sale entry: its challenge and the buy, behind the bot
	// wall (device limit, blocklist) and the per-user limit, which they
	// share, so an account cannot stockpile challenges faster than it
	// may buy. The buy spends its token in its handler, once the sold-out
	// flag and the sale's window have let it through (placeSeckill).
	g.route("GET /api/v1/activities/{activity_id}/challenge", routeSpec{
		access: userOnly, limit: api, perUser: g.users, perIP: true, bots: true,
	}, g.getChallenge)
	g.route("POST /api/v1/seckill/orders", routeSpec{
		access: userOnly, limit: seckillLimit, perIP: true, bots: true, admission: g.seckillAdmission,
	}, g.placeSeckillOrder)
	g.route("GET /api/v1/orders/{order_id}", user, g.getOrder)
	g.route("GET /api/v1/orders", offAt(user, LevelProtect), g.listOrders)
	g.route("POST /api/v1/orders/{order_id}/cancel", offAt(write, LevelClose), g.cancelOrder)
	g.route("POST /api/v1/orders/{order_id}/refunds", offAt(write, LevelClose), g.refundOrder)
	if g.opts.Payment != nil {
		g.paymentRoutes(user, write)
	}
	g.route("POST /api/v1/orders/quote", offAt(write, LevelSurvive), g.quoteOrder)
	g.route("POST /api/v1/orders", offAt(write, LevelSurvive), g.createOrder)
	g.route("POST /admin/v1/promotions", adminRoute, g.needsMarketing(g.createPromotion))
	g.route("POST /admin/v1/coupon-templates", adminRoute, g.needsMarketing(g.createCouponTemplate))
	g.route("POST /api/v1/coupons/{template_id}/claim", offAt(write, LevelSurvive), g.needsMarketing(g.claimCoupon))
	g.route("GET /api/v1/coupons", offAt(user, LevelProtect), g.needsMarketing(g.listCoupons))

	if g.screen != nil {
		g.route("GET "+ScreenPath, read, g.serveScreen)
		g.route("GET "+ScreenEventsPath, routeSpec{access: screenView, limit: routeLimit, perIP: true}, g.screenEvents)
		g.route("POST "+ScreenTokensPath, adminRoute, g.issueScreenToken)
	}

	// Probes and scrapes are never rate limited: a gateway that sheds
	// load must still look alive and be observable.
	ops := telemetry.AdminHandler(g.opts.Registry, g.opts.Dependencies, g.opts.Ready)
	for _, p := range opsRoutes {
		g.route(p, routeSpec{access: public, ops: true}, func(w http.ResponseWriter, r *http.Request) error {
			ops.ServeHTTP(w, r)
			return nil
		})
	}
}

// opsRoutes are the probes, the dependency report and the scrape.
var opsRoutes = []string{"GET /healthz", "GET /readyz", "GET " + telemetry.DependenciesPath, "GET /metrics"}

// callCtx bounds one downstream call, so a slow dependency costs a
// request at most CallTimeout instead of holding it (and its goroutine
// and connection) indefinitely.
func (g *Gateway) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.opts.CallTimeout)
}
