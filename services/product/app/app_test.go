package app_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/errcode"
	pgplatform "github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	inventoryapp "github.com/flashsale/flashsale/services/inventory/app"
	"github.com/flashsale/flashsale/services/product/app"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"products"}, Faults: true}, func(s *localstack.Stack) { stack = s })
}

// MustListen listens on a free loopback port.
func MustListen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// MustRun runs a service's Run until the test ends and reports its error.
// It returns when GET path (telemetry.DependenciesPath or /healthz) on
// admin answers 200, or
// fails the test if Run returns first.
func MustRun(tb testing.TB, admin net.Listener, path string, run func(context.Context) error) {
	tb.Helper()
	localstack.MustRun(tb, path, "http://"+admin.Addr().String()+path, localstack.Status200, run)
}

// HTTPStatus returns the status code of GET url, or 0 if it fails.
func HTTPStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// MustInventory starts the inventory service on the test Redis and returns
// its client and gRPC address.
func MustInventory(tb testing.TB) (inventoryv1.InventoryServiceClient, string) {
	tb.Helper()
	grpcLis, adminLis := MustListen(tb), MustListen(tb)
	addr := grpcLis.Addr().String()
	MustRun(tb, adminLis, telemetry.DependenciesPath, func(ctx context.Context) error {
		return inventoryapp.Run(ctx, inventoryapp.Config{GRPCListener: grpcLis, AdminListener: adminLis, RedisAddr: stack.RedisAddr})
	})
	return inventoryv1.NewInventoryServiceClient(localstack.MustDial(tb, addr)), addr
}

// env is what a test needs: the product service's client, the inventory
// service's client and the catalog database.
type env struct {
	product   productv1.ProductServiceClient
	inventory inventoryv1.InventoryServiceClient
	db        *pgxpool.Pool
}

// MustStart starts the inventory service and a product service on c
// talking to it.
func MustStart(tb testing.TB, c clock.Clock) env {
	tb.Helper()
	inv, invAddr := MustInventory(tb)
	return MustStartProduct(tb, c, invAddr, inv)
}

// MustStartProduct starts a product service on c whose inventory service
// is at invAddr, and waits until it is ready.
func MustStartProduct(tb testing.TB, c clock.Clock, invAddr string, inv inventoryv1.InventoryServiceClient) env {
	tb.Helper()
	return mustStartProductOn(tb, c, invAddr, inv, stack.RedisAddr)
}

// mustStartProductOn is MustStartProduct with its Redis at redisAddr.
func mustStartProductOn(tb testing.TB, c clock.Clock, invAddr string, inv inventoryv1.InventoryServiceClient, redisAddr string) env {
	tb.Helper()
	grpcLis, adminLis := MustListen(tb), MustListen(tb)
	cfg := app.Config{
		GRPCListener:  grpcLis,
		AdminListener: adminLis,
		Clock:         c,
		PostgresURL:   stack.PostgresURL("products"),
		RedisAddr:     redisAddr,
		InventoryAddr: invAddr,
		NodeID:        localstack.NodeID(),
	}
	MustRun(tb, adminLis, telemetry.DependenciesPath, func(ctx context.Context) error { return app.Run(ctx, cfg) })
	return env{
		product:   productv1.NewProductServiceClient(localstack.MustDial(tb, grpcLis.Addr().String())),
		inventory: inv,
		db:        MustDB(tb),
	}
}

// MustDB returns a pool on the catalog database.
func MustDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgplatform.Dial(context.Background(), stack.PostgresURL("products"), 4)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// MustCount returns the result of a count(*) query.
func MustCount(tb testing.TB, db *pgxpool.Pool, query string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// MustProduct creates a product with stock units at 199.00.
func MustProduct(tb testing.TB, e env, stock int64) *productv1.Product {
	tb.Helper()
	p, err := e.product.CreateProduct(context.Background(), &productv1.CreateProductRequest{Title: "Phone", Price: 199_00, Stock: stock})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// MustProductStock returns the product's stock as the database holds it
// (bypassing the service's cache).
func MustProductStock(tb testing.TB, e env, skuID int64) int64 {
	tb.Helper()
	return MustCount(tb, e.db, `SELECT stock FROM products WHERE sku_id = $1`, skuID)
}

// MustBeUntouched fails unless the product still has stock units and no
// activity: a rejected CreateActivity writes nothing.
func MustBeUntouched(tb testing.TB, e env, skuID, stock int64) {
	tb.Helper()
	if got := MustProductStock(tb, e, skuID); got != stock {
		tb.Fatalf("product stock = %d, want %d (unchanged)", got, stock)
	}
	if n := MustCount(tb, e.db, `SELECT count(*) FROM activities WHERE sku_id = $1`, skuID); n != 0 {
		tb.Fatalf("activities of the product = %d, want 0", n)
	}
}

// activityRequest is a valid request for stock units of p, in a window
// around now.
func activityRequest(p *productv1.Product, stock int64, now time.Time) *productv1.CreateActivityRequest {
	return &productv1.CreateActivityRequest{
		SkuId: p.GetSkuId(), Price: 99_00, Stock: stock, PerUserLimit: 2,
		StartsAt: timestamppb.New(now.Add(-time.Minute)), EndsAt: timestamppb.New(now.Add(time.Hour)),
	}
}

func TestCreateAndGetProduct(t *testing.T) {
	e := MustStart(t, clock.Real{})
	ctx := context.Background()
	created, err := e.product.CreateProduct(ctx, &productv1.CreateProductRequest{Title: "Double-11 phone", Price: 1999_00, Stock: 500})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetSkuId() <= 0 {
		t.Fatalf("sku_id = %d, want positive", created.GetSkuId())
	}
	got, err := e.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: created.GetSkuId()})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d Double-11 phone 199900 500", created.GetSkuId())
	if g := fmt.Sprintf("%d %s %d %d", got.GetSkuId(), got.GetTitle(), got.GetPrice(), got.GetStock()); g != want {
		t.Fatalf("GetProduct = %s, want %s", g, want)
	}
}

// TestUnknownIDsAreNotFound goes through app.Run with the generated client.
func TestUnknownIDsAreNotFound(t *testing.T) {
	e := MustStart(t, clock.Real{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"GetProduct", func() error {
			_, err := e.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: 12345})
			return err
		}},
		{"GetActivity", func() error {
			_, err := e.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: 12345})
			return err
		}},
		{"CreateActivity on an unknown product", func() error {
			_, err := e.product.CreateActivity(ctx, activityRequest(&productv1.Product{SkuId: 12345}, 1, time.Now()))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errcode.Of(tt.call()); got != errcode.NotFound {
				t.Fatalf("code = %s, want %s", got, errcode.NotFound)
			}
		})
	}
}

func TestCreateProductRejectsInvalid(t *testing.T) {
	e := MustStart(t, clock.Real{})
	tests := []struct {
		name string
		req  *productv1.CreateProductRequest
	}{
		{"empty title", &productv1.CreateProductRequest{Title: "", Price: 100, Stock: 1}},
		{"title too long", &productv1.CreateProductRequest{Title: strings.Repeat("x", 201), Price: 100, Stock: 1}},
		{"zero price", &productv1.CreateProductRequest{Title: "t", Price: 0, Stock: 1}},
		{"negative price", &productv1.CreateProductRequest{Title: "t", Price: -100, Stock: 1}},
		{"huge price", &productv1.CreateProductRequest{Title: "t", Price: 10_000_000_001, Stock: 1}},
		{"negative stock", &productv1.CreateProductRequest{Title: "t", Price: 100, Stock: -1}},
		{"huge stock", &productv1.CreateProductRequest{Title: "t", Price: 100, Stock: 1_000_000_001}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := MustCount(t, e.db, `SELECT count(*) FROM products`)
			_, err := e.product.CreateProduct(context.Background(), tt.req)
			if got := errcode.Of(err); got != errcode.InvalidArgument {
				t.Fatalf("code = %s (%v), want %s", got, err, errcode.InvalidArgument)
			}
			if after := MustCount(t, e.db, `SELECT count(*) FROM products`); after != before {
				t.Fatalf("products: %d before, %d after; want nothing written", before, after)
			}
		})
	}
}

func TestCreateActivityRejectsInvalid(t *testing.T) {
	e := MustStart(t, clock.Real{})
	p := MustProduct(t, e, 100)
	now := time.Now()
	tests := []struct {
		name string
		edit func(*productv1.CreateActivityRequest)
	}{
		{"ends before starts", func(r *productv1.CreateActivityRequest) {
			r.StartsAt, r.EndsAt = timestamppb.New(now.Add(2*time.Hour)), timestamppb.New(now.Add(time.Hour))
		}},
		{"ends in the past", func(r *productv1.CreateActivityRequest) {
			r.StartsAt, r.EndsAt = timestamppb.New(now.Add(-2*time.Hour)), timestamppb.New(now.Add(-time.Hour))
		}},
		{"no window", func(r *productv1.CreateActivityRequest) { r.StartsAt, r.EndsAt = nil, nil }},
		{"limit 0", func(r *productv1.CreateActivityRequest) { r.PerUserLimit = 0 }},
		{"limit 1001", func(r *productv1.CreateActivityRequest) { r.PerUserLimit = 1001 }},
		{"price above the product's", func(r *productv1.CreateActivityRequest) { r.Price = p.GetPrice() + 1 }},
		{"zero price", func(r *productv1.CreateActivityRequest) { r.Price = 0 }},
		{"zero stock", func(r *productv1.CreateActivityRequest) { r.Stock = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := activityRequest(p, 10, now)
			tt.edit(req)
			_, err := e.product.CreateActivity(context.Background(), req)
			if got := errcode.Of(err); got != errcode.InvalidArgument {
				t.Fatalf("code = %s (%v), want %s", got, err, errcode.InvalidArgument)
			}
			MustBeUntouched(t, e, p.GetSkuId(), 100)
		})
	}
}

func TestCreateActivityTakesStockAndPreheats(t *testing.T) {
	// The clock stands still, so the caches never expire by themselves:
	// the reads after CreateActivity see its effects only because it
	// invalidates them.
	c := clock.NewManual(time.Now())
	e := MustStart(t, c)
	ctx := context.Background()
	p := MustProduct(t, e, 1000)
	if _, err := e.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.product.ListActivities(ctx, &productv1.ListActivitiesRequest{}); err != nil {
		t.Fatal(err)
	}
	req := activityRequest(p, 100, c.Now())
	req.ChallengeRequired = true
	a, err := e.product.CreateActivity(ctx, req)
	if err != nil {
		t.Fatal(err)
	}

	// The stock is in Redis as soon as CreateActivity has answered.
	st, err := e.inventory.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: a.GetActivityId()})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRemaining() != 100 || st.GetTotal() != 100 {
		t.Fatalf("inventory stock = %d of %d, want 100 of 100", st.GetRemaining(), st.GetTotal())
	}
	got, err := e.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStock() != 900 {
		t.Fatalf("product stock = %d, want 900", got.GetStock())
	}

	detail, err := e.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: a.GetActivityId()})
	if err != nil {
		t.Fatal(err)
	}
	wantDetail := fmt.Sprintf("sku=%d title=Phone price=9900 stock=100 remaining=100 limit=2 challenge=true status=ACTIVITY_STATUS_ACTIVE starts=%s ends=%s",
		p.GetSkuId(), a.GetStartsAt().AsTime(), a.GetEndsAt().AsTime())
	if g := activitySummary(detail); g != wantDetail {
		t.Fatalf("GetActivity:\n got %s\nwant %s", g, wantDetail)
	}
	if g := activitySummary(a); g != wantDetail {
		t.Fatalf("CreateActivity answer:\n got %s\nwant %s", g, wantDetail)
	}

	list, err := e.product.ListActivities(ctx, &productv1.ListActivitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i, l := range list.GetActivities() {
		if i > 0 && l.GetStartsAt().AsTime().Before(list.GetActivities()[i-1].GetStartsAt().AsTime()) {
			t.Fatalf("ListActivities not ordered by starts_at at %d", i)
		}
		if l.GetActivityId() == a.GetActivityId() {
			found = true
			if g := activitySummary(l); g != wantDetail {
				t.Fatalf("listed:\n got %s\nwant %s", g, wantDetail)
			}
		}
	}
	if !found {
		t.Fatalf("ListActivities (%d) lacks activity %d", len(list.GetActivities()), a.GetActivityId())
	}
}

func activitySummary(a *productv1.Activity) string {
	return fmt.Sprintf("sku=%d title=%s price=%d stock=%d remaining=%d limit=%d challenge=%t status=%s starts=%s ends=%s",
		a.GetSkuId(), a.GetTitle(), a.GetPrice(), a.GetStock(), a.GetRemaining(), a.GetPerUserLimit(), a.GetChallengeRequired(), a.GetStatus(),
		a.GetStartsAt().AsTime(), a.GetEndsAt().AsTime())
}

func TestCreateActivityInsufficientStock(t *testing.T) {
	e := MustStart(t, clock.Real{})
	p := MustProduct(t, e, 10)
	_, err := e.product.CreateActivity(context.Background(), activityRequest(p, 11, time.Now()))
	if got := errcode.Of(err); got != errcode.Conflict {
		t.Fatalf("code = %s (%v), want %s", got, err, errcode.Conflict)
	}
	MustBeUntouched(t, e, p.GetSkuId(), 10)
}

// TestCreateActivityInventoryDown: an activity that cannot be preheated is
// not created, its product keeps its stock, and the dependency report
// says why, while /readyz still says the process can serve (the catalog
// does not need the inventory service).
func TestCreateActivityInventoryDown(t *testing.T) {
	closed := MustListen(t)
	deadAddr := closed.Addr().String() // refuses connections once closed
	closed.Close()
	grpcLis, adminLis := MustListen(t), MustListen(t)
	MustRun(t, adminLis, "/healthz", func(ctx context.Context) error {
		return app.Run(ctx, app.Config{GRPCListener: grpcLis, AdminListener: adminLis, PostgresURL: stack.PostgresURL("products"),
			InventoryAddr: deadAddr, NodeID: localstack.NodeID()})
	})
	e := env{product: productv1.NewProductServiceClient(localstack.MustDial(t, grpcLis.Addr().String())), db: MustDB(t)}
	p := MustProduct(t, e, 50)

	_, err := e.product.CreateActivity(context.Background(), activityRequest(p, 20, time.Now()))
	if got := errcode.Of(err); got != errcode.Unavailable {
		t.Fatalf("code = %s (%v), want %s", got, err, errcode.Unavailable)
	}
	MustBeUntouched(t, e, p.GetSkuId(), 50)
	admin := "http://" + adminLis.Addr().String()
	if got := HTTPStatus(admin + telemetry.DependenciesPath); got != http.StatusServiceUnavailable {
		t.Errorf("%s with inventory down = %d, want %d", telemetry.DependenciesPath, got, http.StatusServiceUnavailable)
	}
	if got := HTTPStatus(admin + "/readyz"); got != http.StatusOK {
		t.Errorf("/readyz with inventory down = %d, want 200 (shallow)", got)
	}
}

// TestConcurrentCreateActivityNeverOversells races 50 activities of 30
// units each on a 1,000-unit product: exactly 33 fit, and each of them is
// preheated with its 30 units.
func TestConcurrentCreateActivityNeverOversells(t *testing.T) {
	e := MustStart(t, clock.Real{})
	p := MustProduct(t, e, 1000)
	var (
		mu        sync.Mutex
		created   []int64
		conflicts atomic.Int64
		wg        sync.WaitGroup
	)
	for range 50 {
		wg.Go(func() {
			a, err := e.product.CreateActivity(context.Background(), activityRequest(p, 30, time.Now()))
			switch code := errcode.Of(err); {
			case err == nil:
				mu.Lock()
				created = append(created, a.GetActivityId())
				mu.Unlock()
			case code == errcode.Conflict:
				conflicts.Add(1)
			default:
				t.Errorf("CreateActivity: %s %v", code, err)
			}
		})
	}
	wg.Wait()
	if len(created) != 33 || conflicts.Load() != 17 {
		t.Fatalf("created %d, conflicts %d; want 33 and 17", len(created), conflicts.Load())
	}
	if got := MustProductStock(t, e, p.GetSkuId()); got != 10 {
		t.Fatalf("product stock = %d, want 10", got)
	}
	if n := MustCount(t, e.db, `SELECT count(*) FROM activities WHERE sku_id = $1`, p.GetSkuId()); n != 33 {
		t.Fatalf("activity rows = %d, want 33", n)
	}
	for _, id := range created {
		st, err := e.inventory.GetStock(context.Background(), &inventoryv1.GetStockRequest{ActivityId: id})
		if err != nil || st.GetRemaining() != 30 {
			t.Fatalf("inventory stock of %d = %d (%v), want 30", id, st.GetRemaining(), err)
		}
	}
}

// TestActivityStatus walks one activity through its statuses on a manual
// clock, selling out its stock through the inventory service.
func TestActivityStatus(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	c := clock.NewManual(t0)
	e := MustStart(t, c)
	ctx := context.Background()
	p := MustProduct(t, e, 10)
	a, err := e.product.CreateActivity(ctx, &productv1.CreateActivityRequest{
		SkuId: p.GetSkuId(), Price: 100, Stock: 2, PerUserLimit: 2,
		StartsAt: timestamppb.New(t0.Add(time.Hour)), EndsAt: timestamppb.New(t0.Add(2 * time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sellOut := func() {
		_, err := e.inventory.Reserve(ctx, &inventoryv1.ReserveRequest{
			ActivityId: a.GetActivityId(), UserId: 7, Quantity: 2, OrderId: a.GetActivityId() + 1,
			IdempotencyKey: "sell-out", ExpiresAt: timestamppb.New(t0.Add(3 * time.Hour)),
		})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
	}
	steps := []struct {
		name          string
		at            time.Time
		before        func()
		wantStatus    productv1.ActivityStatus
		wantRemaining int64
	}{
		{"before the start", t0, nil, productv1.ActivityStatus_ACTIVITY_STATUS_UPCOMING, 2},
		{"at the start", t0.Add(time.Hour), nil, productv1.ActivityStatus_ACTIVITY_STATUS_ACTIVE, 2},
		// The remaining stock is cached for 200ms of the service's
		// clock, so the sale shows once the clock has moved past it.
		{"sold out, within the stock cache's life", t0.Add(time.Hour + 100*time.Millisecond), sellOut, productv1.ActivityStatus_ACTIVITY_STATUS_ACTIVE, 2},
		{"sold out, after the stock cache's life", t0.Add(time.Hour + time.Second), nil, productv1.ActivityStatus_ACTIVITY_STATUS_SOLD_OUT, 0},
		{"at the end", t0.Add(2 * time.Hour), nil, productv1.ActivityStatus_ACTIVITY_STATUS_ENDED, 0},
	}
	for _, s := range steps {
		c.Set(s.at)
		if s.before != nil {
			s.before()
		}
		got, err := e.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: a.GetActivityId()})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.GetStatus() != s.wantStatus || got.GetRemaining() != s.wantRemaining {
			t.Fatalf("%s: status %s remaining %d, want %s and %d", s.name, got.GetStatus(), got.GetRemaining(), s.wantStatus, s.wantRemaining)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr string // a fragment of the error, "" for none
		check   func(app.Config) error
	}{
		{"defaults", nil, "", func(c app.Config) error {
			if c.GRPCAddr != ":9101" || c.AdminAddr != ":9201" || c.InventoryAddr != "127.0.0.1:9102" ||
				c.StockTTL != 200*time.Millisecond || c.ActivityTTL != 30*time.Second || c.Clock == nil {
				return fmt.Errorf("unexpected defaults %+v", c)
			}
			return nil
		}},
		{"overrides", map[string]string{"FLASHSALE_INVENTORY_ADDR": "inv:1", "FLASHSALE_NODE_ID": "7", "FLASHSALE_STOCK_CACHE_TTL": "50ms"}, "", func(c app.Config) error {
			if c.InventoryAddr != "inv:1" || c.NodeID != 7 || c.StockTTL != 50*time.Millisecond {
				return fmt.Errorf("overrides not applied: %+v", c)
			}
			return nil
		}},
		{"node out of range", map[string]string{"FLASHSALE_NODE_ID": "128"}, "FLASHSALE_NODE_ID", nil},
		{"bad duration", map[string]string{"FLASHSALE_STOCK_CACHE_TTL": "soon"}, "FLASHSALE_STOCK_CACHE_TTL", nil},
		{"zero ttl", map[string]string{"FLASHSALE_CATALOG_CACHE_TTL": "0s"}, "FLASHSALE_CATALOG_CACHE_TTL", nil},
		{"shared level", map[string]string{"FLASHSALE_REDIS_ADDR": "redis:6379", "FLASHSALE_CATALOG_SHARED_TTL": "30s", "FLASHSALE_CATALOG_FILTER_REBUILD": "1m"}, "", func(c app.Config) error {
			if c.RedisAddr != "redis:6379" || c.SharedTTL != 30*time.Second || c.FilterRebuild != time.Minute {
				return fmt.Errorf("shared level settings not applied: %+v", c)
			}
			return nil
		}},
		{"zero shared ttl", map[string]string{"FLASHSALE_CATALOG_SHARED_TTL": "0s"}, "FLASHSALE_CATALOG_SHARED_TTL", nil},
		{"zero filter rebuild", map[string]string{"FLASHSALE_CATALOG_FILTER_REBUILD": "0s"}, "FLASHSALE_CATALOG_FILTER_REBUILD", nil},
		{"no connections", map[string]string{"FLASHSALE_POSTGRES_MAX_CONNS": "0"}, "FLASHSALE_POSTGRES_MAX_CONNS", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"FLASHSALE_POSTGRES_URL": app.DefaultPostgresURL} // required outside development
			maps.Copy(vars, tt.vars)
			env := config.FromMap(vars)
			cfg := app.ConfigFromEnv(env)
			err := env.Err()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Err() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Err() = %v, want one naming %s", err, tt.wantErr)
			}
			if tt.check != nil {
				if err := tt.check(cfg); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
