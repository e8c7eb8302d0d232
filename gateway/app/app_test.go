package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, servicetest.StackConfig(), func(s *localstack.Stack) { stack = s })
}

const secret = "0123456789abcdef0123456789abcdef"

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(app.Config) bool
	}{
		{"defaults", map[string]string{"FLASHSALE_JWT_SECRET": secret}, "", func(c app.Config) bool {
			return c.HTTPAddr == "127.0.0.1:8080" && c.ProductAddr == "127.0.0.1:9101" && c.OrderAddr == "127.0.0.1:9103" &&
				c.RedisAddr == "127.0.0.1:6379" && !c.DevTokens && c.SoldOutTTL == time.Second && c.CacheTTL == time.Second &&
				c.CallTimeout == 2*time.Second && c.MaxBodyBytes == 64<<10 &&
				c.SeckillUserLimit == gateway.Limit{RPS: 5, Burst: 10} && c.IPLimit == gateway.Limit{RPS: 200, Burst: 400} &&
				c.IPLimitKeys == gateway.DefaultIPLimitKeys && len(c.TrustedProxies) == 0 &&
				c.SeckillAdmission == gateway.DefaultSeckillAdmission && c.WriteAdmission == gateway.DefaultWriteAdmission &&
				len(c.ScreenKafkaBrokers) == 0 && len(c.ScreenPaymentMetrics) == 0
		}},
		{"big screen", map[string]string{
			"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_SCREEN_KAFKA_BROKERS": "k1:9092, k2:9092",
			"FLASHSALE_SCREEN_PAYMENT_METRICS": "http://payment-1:9204/metrics,http://payment-2:9204/metrics",
		}, "", func(c app.Config) bool {
			return fmt.Sprint(c.ScreenKafkaBrokers) == "[k1:9092 k2:9092]" &&
				fmt.Sprint(c.ScreenPaymentMetrics) == "[http://payment-1:9204/metrics http://payment-2:9204/metrics]"
		}},
		{"big screen payments without brokers", map[string]string{"FLASHSALE_JWT_SECRET": secret,
			"FLASHSALE_SCREEN_PAYMENT_METRICS": "http://payment:9204/metrics"}, "FLASHSALE_SCREEN_KAFKA_BROKERS is not", nil},
		{"big screen payments not a URL", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_SCREEN_KAFKA_BROKERS": "k:9092",
			"FLASHSALE_SCREEN_PAYMENT_METRICS": "payment:9204"}, "FLASHSALE_SCREEN_PAYMENT_METRICS", nil},
		{"screen tokens retired", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_SCREEN_TOKENS_RETIRED_UNTIL": "2026-11-11T08:00:00+08:00"}, "",
			func(c app.Config) bool {
				return c.ScreenRetiredUntil.Equal(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
			}},
		{"screen tokens retired until no time", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_SCREEN_TOKENS_RETIRED_UNTIL": "yesterday"},
			"FLASHSALE_SCREEN_TOKENS_RETIRED_UNTIL", nil},
		{"admission and address limits", map[string]string{
			"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_RATE_IP_RPS": "0", "FLASHSALE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,::1",
			"FLASHSALE_ADMISSION_SECKILL_MIN": "2", "FLASHSALE_ADMISSION_SECKILL_INITIAL": "3", "FLASHSALE_ADMISSION_SECKILL_MAX": "4",
			"FLASHSALE_ADMISSION_WRITE_MAX": "0",
		}, "", func(c app.Config) bool {
			return c.IPLimit.RPS == 0 && fmt.Sprint(c.TrustedProxies) == "[10.0.0.0/8 192.168.1.7/32 ::1/128]" &&
				c.SeckillAdmission == gateway.AdmissionLimit{Min: 2, Initial: 3, Max: 4} && c.WriteAdmission.Max == 0
		}},
		{"bad trusted proxy", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "FLASHSALE_TRUSTED_PROXIES", nil},
		{"admission initial above max", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_ADMISSION_WRITE_INITIAL": "900"}, "FLASHSALE_ADMISSION_WRITE", nil},
		{"overrides", map[string]string{
			"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_HTTP_ADDR": ":9999", "FLASHSALE_RATE_SECKILL_RPS": "7",
			"FLASHSALE_RATE_SECKILL_BURST": "8", "FLASHSALE_SOLD_OUT_TTL": "250ms",
		}, "", func(c app.Config) bool {
			return c.HTTPAddr == ":9999" && c.SeckillRouteLimit == gateway.Limit{RPS: 7, Burst: 8} && c.SoldOutTTL == 250*time.Millisecond
		}},
		{"dev mode needs no secret", map[string]string{"FLASHSALE_DEV": "true"}, "", func(c app.Config) bool { return c.DevTokens }},
		{"no dev tokens outside dev mode", map[string]string{"FLASHSALE_JWT_SECRET": secret}, "", func(c app.Config) bool { return !c.DevTokens }},
		{"public secret", map[string]string{"FLASHSALE_JWT_SECRET": "compose-dev-secret-change-me-0123456789"}, "public placeholder", nil},
		{"secret required", map[string]string{}, "FLASHSALE_JWT_SECRET is required", nil},
		{"secret too short", map[string]string{"FLASHSALE_JWT_SECRET": "short"}, "at least 32 bytes", nil},
		{"negative rate", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_RATE_USER_RPS": "-1"}, "FLASHSALE_RATE_USER_RPS", nil},
		{"bad duration", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_CALL_TIMEOUT": "soon"}, "FLASHSALE_CALL_TIMEOUT", nil},
		{"zero sold-out ttl", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_SOLD_OUT_TTL": "0s"}, "FLASHSALE_SOLD_OUT_TTL", nil},
		{"bad bool", map[string]string{"FLASHSALE_DEV": "maybe"}, "FLASHSALE_DEV=", nil},
		{"redis cluster", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379", "FLASHSALE_REDIS_CLUSTER": "true"}, "",
			func(c app.Config) bool { return c.RedisAddr == "r1:6379,r2:6379" && c.RedisCluster }},
		{"redis list without the cluster flag", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379"}, "FLASHSALE_REDIS_CLUSTER=true", nil},
		{"redis without port", map[string]string{"FLASHSALE_JWT_SECRET": secret, "FLASHSALE_REDIS_ADDR": "redis"}, "FLASHSALE_REDIS_ADDR", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := config.FromMap(tt.env)
			cfg := app.ConfigFromEnv(env)
			err := env.Err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config = %+v", cfg)
			}
		})
	}
}

func TestRunRefusesToStartWithoutSecret(t *testing.T) {
	err := app.Run(context.Background(), app.Config{RedisAddr: stack.RedisAddr, HTTPListener: servicetest.MustListen(t)})
	if err == nil || !strings.Contains(err.Error(), "JWT secret") {
		t.Fatalf("Run = %v, want a JWT secret error", err)
	}
}

// MustGateway runs the gateway process on a free port and returns its
// base URL once /healthz answers.
func MustGateway(tb testing.TB, cfg app.Config) string {
	tb.Helper()
	lis := servicetest.MustListen(tb)
	cfg.HTTPListener = lis
	cfg.RedisAddr = stack.RedisAddr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	base := "http://" + lis.Addr().String()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if status, _ := call(tb, http.MethodGet, base+"/healthz", "", ""); status == http.StatusOK {
			return base
		}
		if time.Now().After(deadline) {
			tb.Fatal("gateway /healthz not 200 after 10s")
		}
	}
}

// call sends a request and returns the answer's status and body, or
// status 0 when the request fails.
func call(tb testing.TB, method, url, token, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestReadinessIsShallow: with every downstream down the gateway is
// alive and ready (it serves, answering what needs a downstream with
// UNAVAILABLE through its breakers), so a failing service never takes
// every gateway pod out of its Service; the dependency report says what
// is down.
func TestReadinessIsShallow(t *testing.T) {
	down := MustGateway(t, app.Config{JWTSecret: secret, ProductAddr: "127.0.0.1:1", OrderAddr: "127.0.0.1:1",
		PaymentAddr: "127.0.0.1:1", MarketingAddr: "127.0.0.1:1"})
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := call(t, http.MethodGet, down+path, "", ""); status != http.StatusOK {
			t.Errorf("%s with downstreams down = %d %s, want 200", path, status, body)
		}
	}
	status, body := call(t, http.MethodGet, down+telemetry.DependenciesPath, "", "")
	var report struct{ Dependencies map[string]string }
	if err := json.Unmarshal([]byte(body), &report); status != http.StatusServiceUnavailable || err != nil {
		t.Fatalf("%s with downstreams down = %d %s (%v), want 503", telemetry.DependenciesPath, status, body, err)
	}
	for _, dep := range []string{"product", "order", "payment", "marketing"} {
		if report.Dependencies[dep] != "down" {
			t.Errorf("%s: %q, want down (report %s)", dep, report.Dependencies[dep], body)
		}
	}

	svc := servicetest.MustStart(t, stack)
	up := MustGateway(t, app.Config{JWTSecret: secret, ProductAddr: svc.ProductAddr, OrderAddr: svc.OrderAddr})
	for _, path := range []string{"/readyz", telemetry.DependenciesPath} {
		if status, body := call(t, http.MethodGet, up+path, "", ""); status != http.StatusOK {
			t.Errorf("%s with everything up = %d %s, want 200", path, status, body)
		}
	}
}

func TestDevModeEndToEnd(t *testing.T) {
	svc := servicetest.MustStart(t, stack)
	base := MustGateway(t, app.Config{DevTokens: true, ProductAddr: svc.ProductAddr, OrderAddr: svc.OrderAddr})

	status, body := call(t, http.MethodPost, base+"/api/v1/dev/token", "", `{"user_id":"1","role":"admin"}`)
	if status != http.StatusOK {
		t.Fatalf("dev token: %d %s", status, body)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
		t.Fatalf("dev token body %s: %v", body, err)
	}
	status, body = call(t, http.MethodPost, base+"/admin/v1/products", tok.Token, `{"title":"kettle","price":2500,"stock":5}`)
	if status != http.StatusCreated {
		t.Fatalf("create product with a dev admin token: %d %s", status, body)
	}
	var created struct {
		SKUID string `json:"sku_id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	status, body = call(t, http.MethodGet, base+"/api/v1/products/"+created.SKUID, "", "")
	if status != http.StatusOK || !strings.Contains(body, `"title":"kettle"`) {
		t.Fatalf("read product: %d %s", status, body)
	}
	status, body = call(t, http.MethodGet, base+"/metrics", "", "")
	if status != http.StatusOK || !strings.Contains(body, `gateway_http_requests_total{route="POST /admin/v1/products",status="201"} 1`) {
		t.Fatalf("/metrics: %d, lacks the product creation", status)
	}
}
