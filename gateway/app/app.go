// Package app wires the gateway process: configuration from the
// environment, gRPC connections to product and order (through Consul when
// configured, each behind a circuit breaker), Redis for the shared per-user
// limits, the settings watched in Consul KV, and the HTTP server.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/resilience"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/serve"
	"github.com/flashsale/flashsale/platform/telemetry"
	marketingv1 "github.com/flashsale/flashsale/proto/marketing/v1"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	paymentv1 "github.com/flashsale/flashsale/proto/payment/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// Config is the gateway process's configuration.
type Config struct {
	// HTTPAddr is where the API listens unless HTTPListener is set.
	HTTPAddr     string
	HTTPListener net.Listener
	Logger       *slog.Logger
	Clock        clock.Clock

	// ProductAddr and OrderAddr are gRPC targets of the services.
	ProductAddr string
	OrderAddr   string
	// PaymentAddr is the payment service's gRPC target; empty leaves the
	// payment routes out.
	PaymentAddr string
	// MarketingAddr is the marketing service's gRPC target; empty runs
	// the gateway without promotions and coupons (their routes answer
	// UNAVAILABLE).
	MarketingAddr string
	// RedisAddr holds the per-user rate limits and accepted keys:
	// host:port, or with RedisCluster a comma-separated list of Redis
	// Cluster nodes (redisclient.Config).
	RedisAddr    string
	RedisCluster bool

	// JWTSecret signs and verifies bearer tokens (at least 32 bytes). It
	// may be empty only with DevTokens, which then uses a random secret
	// for the life of the process.
	JWTSecret string
	// DevTokens enables POST /api/v1/dev/token (demo and development); the
	// environment turns it on with the development switch, FLASHSALE_DEV.
	DevTokens bool

	// RouteLimit is each API route's local token bucket.
	RouteLimit gateway.Limit
	// SeckillRouteLimit is the seckill route's local token bucket.
	SeckillRouteLimit gateway.Limit
	// SeckillUserLimit is each user's limit on the flash-sale entry (the
	// challenges, and the buys that pass the sold-out flag and the
	// sale's window), shared by every replica through Redis.
	SeckillUserLimit gateway.Limit
	// IPLimit is each client address's limit on this replica, over at
	// most IPLimitKeys addresses; X-Forwarded-For is read only from
	// TrustedProxies (see gateway.Options).
	IPLimit        gateway.Limit
	IPLimitKeys    int
	TrustedProxies []netip.Prefix
	// DeviceLimit, Blocklist and Challenge* are the flash-sale entry's
	// bot wall (see gateway.Options); the blocklist is the one in force
	// when Consul holds none.
	DeviceLimit gateway.Limit
	Blocklist   gateway.Blocklist
	// ScreenRetiredUntil, an RFC 3339 time, retires the screen tokens
	// issued up to it (to the second) when Consul holds no
	// screen/tokens_retired_until (zero: none).
	ScreenRetiredUntil time.Time
	ChallengeBits      int
	ChallengeJitter    time.Duration
	ChallengeTTL       time.Duration
	// SeckillAdmission and WriteAdmission are the adaptive concurrency
	// limits of the flash-sale route and of the other write routes.
	SeckillAdmission, WriteAdmission gateway.AdmissionLimit

	// SoldOutTTL is how long a sold-out activity is refused locally.
	SoldOutTTL time.Duration
	// CacheTTL is the lifetime of cached activities and products.
	CacheTTL time.Duration
	// CallTimeout bounds each gRPC call, and each Redis call of a request.
	CallTimeout time.Duration
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// AccessLogRate is how many ordinary access-log lines this replica
	// writes a second at most; every 5xx and every request slower than
	// half the call timeout is written regardless, and 0 writes every
	// request.
	AccessLogRate int
	// Grace bounds the graceful shutdown (default 10s).
	Grace time.Duration

	// SeckillClosed and CatalogCacheOnly are the degrade switches'
	// positions when Consul holds none (see gateway.Settings).
	SeckillClosed, CatalogCacheOnly bool
	// Degrade is the degrade level set by hand at start
	// (FLASHSALE_DEGRADE_LEVEL: normal, protect, survive or close), and
	// DegradeAuto lets the automatic controller raise it
	// (FLASHSALE_DEGRADE_AUTO, off by default).
	Degrade     gateway.Level
	DegradeAuto bool
	// DegradeP99Budget is the flash-sale route's p99 budget: a second
	// over it is pressure to the automatic controller.
	DegradeP99Budget time.Duration
	// A downstream's circuit breaker opens for BreakerOpenFor once
	// BreakerFailurePercent of at least BreakerMinRequests calls in a
	// window failed (zero: the defaults of resilience.BreakerConfig).
	BreakerMinRequests, BreakerFailurePercent uint32
	BreakerOpenFor                            time.Duration
	// Discovery says where Consul is; with it, ProductAddr and OrderAddr
	// may be consul://product and consul://order, and the settings under
	// SettingsPrefix in Consul KV override the ones above.
	Discovery discovery.Config

	// ScreenKafkaBrokers, when set (FLASHSALE_SCREEN_KAFKA_BROKERS), turn
	// on the big screen (GET /screen), which reads orders.events from
	// them; ScreenPaymentMetrics (FLASHSALE_SCREEN_PAYMENT_METRICS) are
	// the payment replicas' /metrics URLs it reads each channel's
	// payment outcomes from (gateway.ScreenOptions).
	ScreenKafkaBrokers   []string
	ScreenPaymentMetrics []string
}

// SettingsPrefix is where the gateway's settings live in Consul KV (keys
// gateway.KeySeckillClosed and the others under it).
const SettingsPrefix = "flashsale/gateway/"

// minSecretLen is the shortest HS256 secret accepted: 256 bits, the size
// of the hash, as RFC 7518 requires.
const minSecretLen = 32

// ConfigFromEnv reads the FLASHSALE_* variables, with defaults, and
// validates them; env.Err() reports every problem.
func ConfigFromEnv(env *config.Env) Config {
	redisCfg := redisclient.ConfigFromEnv(env)
	cfg := Config{
		HTTPAddr:      env.String("FLASHSALE_HTTP_ADDR", "127.0.0.1:8080"),
		ProductAddr:   env.String("FLASHSALE_PRODUCT_ADDR", "127.0.0.1:9101"),
		OrderAddr:     env.String("FLASHSALE_ORDER_ADDR", "127.0.0.1:9103"),
		PaymentAddr:   env.String("FLASHSALE_PAYMENT_ADDR", "127.0.0.1:9104"),
		RedisAddr:     redisCfg.Addr,
		RedisCluster:  redisCfg.Cluster,
		JWTSecret:     env.Secret("FLASHSALE_JWT_SECRET"),
		DevTokens:     env.Dev(),
		MarketingAddr: env.String("FLASHSALE_MARKETING_ADDR", "127.0.0.1:9105"),
		RouteLimit: gateway.Limit{
			RPS:   int(env.Int("FLASHSALE_RATE_ROUTE_RPS", 2000)),
			Burst: int(env.Int("FLASHSALE_RATE_ROUTE_BURST", 4000)),
		},
		SeckillRouteLimit: gateway.Limit{
			RPS:   int(env.Int("FLASHSALE_RATE_SECKILL_RPS", 5000)),
			Burst: int(env.Int("FLASHSALE_RATE_SECKILL_BURST", 10000)),
		},
		SeckillUserLimit: gateway.Limit{
			RPS:   int(env.Int("FLASHSALE_RATE_USER_RPS", 5)),
			Burst: int(env.Int("FLASHSALE_RATE_USER_BURST", 10)),
		},
		IPLimit: gateway.Limit{
			RPS:   int(env.Int("FLASHSALE_RATE_IP_RPS", 200)),
			Burst: int(env.Int("FLASHSALE_RATE_IP_BURST", 400)),
		},
		IPLimitKeys: int(env.Int("FLASHSALE_RATE_IP_MAX_KEYS", gateway.DefaultIPLimitKeys)),
		DeviceLimit: gateway.Limit{
			RPS:   int(env.Int("FLASHSALE_RATE_DEVICE_RPS", 10)),
			Burst: int(env.Int("FLASHSALE_RATE_DEVICE_BURST", 20)),
		},
		ChallengeBits:    int(env.IntIn("FLASHSALE_CHALLENGE_DIFFICULTY", gateway.DefaultChallengeBits, 1, gateway.MaxChallengeBits)),
		ChallengeJitter:  env.Duration("FLASHSALE_CHALLENGE_JITTER", gateway.DefaultChallengeJitter),
		ChallengeTTL:     env.Positive("FLASHSALE_CHALLENGE_TTL", gateway.DefaultChallengeTTL),
		SeckillAdmission: admissionFromEnv(env, "SECKILL", gateway.DefaultSeckillAdmission),
		WriteAdmission:   admissionFromEnv(env, "WRITE", gateway.DefaultWriteAdmission),
		SoldOutTTL:       env.Positive("FLASHSALE_SOLD_OUT_TTL", gateway.DefaultSoldOutTTL),
		CacheTTL:         env.Positive("FLASHSALE_CACHE_TTL", gateway.DefaultCacheTTL),
		CallTimeout:      env.Positive("FLASHSALE_CALL_TIMEOUT", gateway.DefaultCallTimeout),
		MaxBodyBytes:     env.Int("FLASHSALE_MAX_BODY_BYTES", gateway.DefaultMaxBodyBytes),
		AccessLogRate:    int(env.IntIn("FLASHSALE_ACCESS_LOG_RATE", gateway.DefaultAccessLogRate, 0, 1_000_000)),

		SeckillClosed:         env.Bool("FLASHSALE_SECKILL_CLOSED", false),
		CatalogCacheOnly:      env.Bool("FLASHSALE_CATALOG_CACHE_ONLY", false),
		Degrade:               degradeFromEnv(env),
		DegradeAuto:           env.Bool("FLASHSALE_DEGRADE_AUTO", false),
		DegradeP99Budget:      env.Positive("FLASHSALE_DEGRADE_P99_BUDGET", gateway.DefaultDegradeP99),
		BreakerMinRequests:    uint32(env.IntIn("FLASHSALE_BREAKER_MIN_REQUESTS", resilience.DefaultMinRequests, 1, 100000)),
		BreakerFailurePercent: uint32(env.IntIn("FLASHSALE_BREAKER_FAILURE_PERCENT", resilience.DefaultFailurePercent, 1, 100)),
		BreakerOpenFor:        env.Positive("FLASHSALE_BREAKER_OPEN_FOR", resilience.DefaultOpenFor),
		Discovery:             discovery.ConfigFromEnv(env),
		ScreenKafkaBrokers:    env.List("FLASHSALE_SCREEN_KAFKA_BROKERS", nil),
		ScreenPaymentMetrics:  env.List("FLASHSALE_SCREEN_PAYMENT_METRICS", nil),
	}
	proxies, err := gateway.ParseTrustedProxies(env.String("FLASHSALE_TRUSTED_PROXIES", ""))
	env.Check(err == nil, "FLASHSALE_TRUSTED_PROXIES: %v", err)
	cfg.TrustedProxies = proxies
	var errUsers, errIPs, errDevices error
	cfg.Blocklist.Users, errUsers = gateway.ParseBlocklistUsers(env.String("FLASHSALE_BLOCKLIST_USERS", ""))
	cfg.Blocklist.IPs, errIPs = gateway.ParseBlocklistIPs(env.String("FLASHSALE_BLOCKLIST_IPS", ""))
	cfg.Blocklist.Devices, errDevices = gateway.ParseBlocklistDevices(env.String("FLASHSALE_BLOCKLIST_DEVICES", ""))
	env.Check(errUsers == nil, "FLASHSALE_BLOCKLIST_USERS: %v", errUsers)
	env.Check(errIPs == nil, "FLASHSALE_BLOCKLIST_IPS: %v", errIPs)
	env.Check(errDevices == nil, "FLASHSALE_BLOCKLIST_DEVICES: %v", errDevices)
	var errRetired error
	cfg.ScreenRetiredUntil, errRetired = gateway.ParseRetiredUntil(env.String("FLASHSALE_SCREEN_TOKENS_RETIRED_UNTIL", ""))
	env.Check(errRetired == nil, "FLASHSALE_SCREEN_TOKENS_RETIRED_UNTIL: %v", errRetired)
	env.Check(cfg.ChallengeJitter >= 0, "FLASHSALE_CHALLENGE_JITTER must not be negative")
	env.Check(cfg.IPLimitKeys > 0, "FLASHSALE_RATE_IP_MAX_KEYS must be positive")
	for name, a := range map[string]gateway.AdmissionLimit{"SECKILL": cfg.SeckillAdmission, "WRITE": cfg.WriteAdmission} {
		env.Check(a.Max == 0 || (a.Min >= 1 && a.Min <= a.Initial && a.Initial <= a.Max),
			"FLASHSALE_ADMISSION_%s_MIN, _INITIAL and _MAX must satisfy 1 <= min <= initial <= max (or _MAX=0 for none)", name)
	}
	env.Check(cfg.JWTSecret == "" || len(cfg.JWTSecret) >= minSecretLen, "FLASHSALE_JWT_SECRET must be at least %d bytes", minSecretLen)
	for name, l := range map[string]gateway.Limit{"ROUTE": cfg.RouteLimit, "SECKILL": cfg.SeckillRouteLimit, "USER": cfg.SeckillUserLimit, "IP": cfg.IPLimit, "DEVICE": cfg.DeviceLimit} {
		env.Check(l.Valid(), "FLASHSALE_RATE_%s_RPS and _BURST must be within 0..%d", name, gateway.MaxRate)
	}
	env.Check(cfg.MaxBodyBytes > 0, "FLASHSALE_MAX_BODY_BYTES must be positive")
	env.Check(len(cfg.ScreenPaymentMetrics) == 0 || len(cfg.ScreenKafkaBrokers) > 0,
		"FLASHSALE_SCREEN_PAYMENT_METRICS is set but FLASHSALE_SCREEN_KAFKA_BROKERS is not: the big screen is off without the brokers")
	for _, u := range cfg.ScreenPaymentMetrics {
		parsed, err := url.Parse(u)
		env.Check(err == nil && (parsed.Scheme == "http" || parsed.Scheme == "https") && parsed.Host != "",
			"FLASHSALE_SCREEN_PAYMENT_METRICS: %q is not an http(s) URL", u)
	}
	return cfg
}

// noneIfZero turns FLASHSALE_CHALLENGE_JITTER=0s into the gateway's "no
// jitter" (a negative duration; zero there means the default).
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// degradeFromEnv reads FLASHSALE_DEGRADE_LEVEL.
func degradeFromEnv(env *config.Env) gateway.Level {
	v := env.String("FLASHSALE_DEGRADE_LEVEL", "normal")
	l, err := gateway.ParseLevel(v)
	env.Check(err == nil, "FLASHSALE_DEGRADE_LEVEL=%q: %v", v, err)
	return l
}

// admissionFromEnv reads FLASHSALE_ADMISSION_<group>_MIN, _INITIAL and
// _MAX.
func admissionFromEnv(env *config.Env, group string, def gateway.AdmissionLimit) gateway.AdmissionLimit {
	prefix := "FLASHSALE_ADMISSION_" + group + "_"
	return gateway.AdmissionLimit{
		Min:     int(env.Int(prefix+"MIN", int64(def.Min))),
		Initial: int(env.Int(prefix+"INITIAL", int64(def.Initial))),
		Max:     int(env.Int(prefix+"MAX", int64(def.Max))),
	}
}

// Run serves the API until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	p, err := serve.New(serve.Spec{
		Name: "gateway", HTTPOnly: true, HTTPAddr: cfg.HTTPAddr, HTTPListener: cfg.HTTPListener,
		Discovery: cfg.Discovery, Logger: cfg.Logger, Grace: cfg.Grace,
	})
	if err != nil {
		return err
	}
	log, consul, reg := p.Log, p.Consul, p.Registry
	secret, err := jwtSecret(cfg)
	if err != nil {
		return err
	}
	rdb, err := redisclient.Dial(ctx, redisclient.Config{Addr: cfg.RedisAddr, Cluster: cfg.RedisCluster}, 0)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer rdb.Close()
	breakers := newBreakerGauge(reg, log)
	dial := func(name, target string) (*grpc.ClientConn, error) {
		cc, err := consul.Dial(target, grpc.WithChainUnaryInterceptor(resilience.Breaker(resilience.BreakerConfig{
			Name: name, MinRequests: cfg.BreakerMinRequests, FailurePercent: cfg.BreakerFailurePercent,
			OpenFor: cfg.BreakerOpenFor, OnStateChange: breakers.record,
		})))
		if err != nil {
			return nil, fmt.Errorf("gateway: %s: %w", name, err)
		}
		breakers.record(name, gobreaker.StateClosed, gobreaker.StateClosed)
		return cc, nil
	}
	productConn, err := dial("product", cfg.ProductAddr)
	if err != nil {
		return err
	}
	defer productConn.Close()
	orderConn, err := dial("order", cfg.OrderAddr)
	if err != nil {
		return err
	}
	defer orderConn.Close()
	dependencies := map[string]telemetry.Check{
		"product": rpc.HealthCheck(productConn),
		"order":   rpc.HealthCheck(orderConn),
		"redis":   func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	}
	var payment paymentv1.PaymentServiceClient
	if cfg.PaymentAddr != "" {
		paymentConn, err := dial("payment", cfg.PaymentAddr)
		if err != nil {
			return err
		}
		defer paymentConn.Close()
		payment = paymentv1.NewPaymentServiceClient(paymentConn)
		dependencies["payment"] = rpc.HealthCheck(paymentConn)
	}
	var marketing marketingv1.MarketingServiceClient
	if cfg.MarketingAddr != "" {
		marketingConn, err := dial("marketing", cfg.MarketingAddr)
		if err != nil {
			return err
		}
		defer marketingConn.Close()
		marketing = marketingv1.NewMarketingServiceClient(marketingConn)
		dependencies["marketing"] = rpc.HealthCheck(marketingConn)
	}

	var screen *gateway.ScreenOptions
	if len(cfg.ScreenKafkaBrokers) > 0 {
		screen = &gateway.ScreenOptions{Brokers: cfg.ScreenKafkaBrokers, PaymentMetrics: cfg.ScreenPaymentMetrics}
	}
	opts := cfg.options()
	opts.Product = productv1.NewProductServiceClient(productConn)
	opts.Order = orderv1.NewOrderServiceClient(orderConn)
	opts.Payment, opts.Marketing = payment, marketing
	opts.Redis = redisclient.CoalescedBounded(rdb)
	opts.Logger, opts.Registry, opts.Dependencies = log, reg, dependencies
	opts.JWTSecret, opts.BreakersOpen, opts.Screen = secret, breakers.open, screen
	opts.Ready = p.Ready.Err
	gw, err := gateway.New(opts)
	if err != nil {
		return err
	}
	// Subscribed before serving: every write of the catalogue after this
	// replica is ready drops its cached copy (docs/caching.md).
	sub, err := cache.Subscribe(ctx, rdb)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer sub.Close()
	fallback := gw.Settings()
	p.Handle("/", gw)
	p.AddWorker(gw.RunDegrade)
	p.AddWorker(gw.RunScreen)
	p.AddWorker(gw.RunHeldMarks)
	p.AddWorker(func(ctx context.Context) error {
		return sub.Run(ctx, func(inv cache.Invalidation) { gw.Invalidated(ctx, inv) },
			func() {
				log.Warn("catalogue invalidations resubscribed: cache expired")
				gw.InvalidationsLost()
			},
			func(err error) { log.Warn("catalogue invalidation skipped", "err", err) })
	})
	// Until Consul's settings are read, the replica is not ready and
	// answers every route but the probes UNAVAILABLE (Options.Ready).
	p.WatchSettings("the gateway's settings in consul", SettingsPrefix, applySettings(gw, fallback, log))
	err = p.Run(ctx, "dev_tokens", cfg.DevTokens)
	// The last requests have drained: the marks they left held get a
	// last chance to reach Redis.
	gw.WriteHeldMarks(context.WithoutCancel(ctx))
	return err
}

// applySettings applies the gateway's switches and limits from Consul's
// KV store as they change; a key that is absent takes its fallback (the
// value from the environment), a bad key keeps the value in force and is
// logged.
func applySettings(gw *gateway.Gateway, fallback gateway.Settings, log *slog.Logger) func(map[string]string) {
	return func(kv map[string]string) {
		s, err := gateway.ParseSettings(kv, fallback, gw.Settings())
		if err != nil {
			log.Error("gateway settings in consul: bad keys keep the values in force", "err", err)
		}
		gw.Apply(s)
		log.Info("gateway settings applied", "seckill_closed", s.SeckillClosed, "catalog_cache_only", s.CatalogCacheOnly, "degrade_level", s.Degrade.String(), "degrade_auto", s.DegradeAuto,
			"route", s.Route, "seckill", s.Seckill, "user", s.User,
			"blocked_users", len(s.Blocklist.Users), "blocked_ips", len(s.Blocklist.IPs), "blocked_devices", len(s.Blocklist.Devices),
			"screen_retired_until", s.ScreenRetiredUntil)
	}
}

// options are the gateway's settings from cfg; Run adds the clients, the
// stores and the telemetry it opened.
func (cfg Config) options() gateway.Options {
	return gateway.Options{
		Clock:              cfg.Clock,
		DevTokens:          cfg.DevTokens,
		RouteLimit:         cfg.RouteLimit,
		SeckillRouteLimit:  cfg.SeckillRouteLimit,
		SeckillUserLimit:   cfg.SeckillUserLimit,
		IPLimit:            cfg.IPLimit,
		IPLimitKeys:        cfg.IPLimitKeys,
		TrustedProxies:     cfg.TrustedProxies,
		DeviceLimit:        cfg.DeviceLimit,
		Blocklist:          cfg.Blocklist,
		ScreenRetiredUntil: cfg.ScreenRetiredUntil,
		ChallengeBits:      cfg.ChallengeBits,
		ChallengeJitter:    noneIfZero(cfg.ChallengeJitter),
		ChallengeTTL:       cfg.ChallengeTTL,
		SeckillAdmission:   cfg.SeckillAdmission,
		WriteAdmission:     cfg.WriteAdmission,
		SoldOutTTL:         cfg.SoldOutTTL,
		CacheTTL:           cfg.CacheTTL,
		CallTimeout:        cfg.CallTimeout,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		AccessLogRate:      cfg.AccessLogRate,
		SeckillClosed:      cfg.SeckillClosed,
		CatalogCacheOnly:   cfg.CatalogCacheOnly,
		Degrade:            cfg.Degrade,
		DegradeAuto:        cfg.DegradeAuto,
		DegradeP99Budget:   cfg.DegradeP99Budget,
	}
}

// jwtSecret is the configured secret, or in dev mode without one a random
// secret: tokens then come only from the dev endpoint of this process.
func jwtSecret(cfg Config) ([]byte, error) {
	switch {
	case len(cfg.JWTSecret) >= minSecretLen:
		return []byte(cfg.JWTSecret), nil
	case cfg.JWTSecret != "":
		return nil, fmt.Errorf("gateway: the JWT secret must be at least %d bytes", minSecretLen)
	case cfg.DevTokens:
		b := make([]byte, minSecretLen)
		_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
		return b, nil
	default:
		return nil, errors.New("gateway: a JWT secret is required unless dev tokens are enabled")
	}
}
