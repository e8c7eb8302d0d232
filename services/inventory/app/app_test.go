package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/discovery"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryv1 "github.com/flashsale/flashsale/proto/inventory/v1"
	"github.com/flashsale/flashsale/services/inventory/app"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{RedisCluster: true}, func(s *localstack.Stack) { stack = s })
}

// activities hands out activity ids. Every key of a sale lives under its
// activity, so a test that takes fresh ones meets neither another test's
// sales nor its own from an earlier run (-count) on the shared Redis.
var activities atomic.Int64

func newActivity() int64 { return 1000 + activities.Add(1) }

// MustRun starts the service on free ports on the stack's single Redis
// and returns a client and the admin base URL; the service stops, and
// must stop cleanly, at cleanup.
func MustRun(tb testing.TB) (inventoryv1.InventoryServiceClient, string) {
	tb.Helper()
	return MustRunOn(tb, app.Config{RedisAddr: stack.RedisAddr, RedisPoolSize: 8})
}

// MustRunOn is MustRun on the Redis that redis names (its Redis fields
// are used).
func MustRunOn(tb testing.TB, redis app.Config) (inventoryv1.InventoryServiceClient, string) {
	tb.Helper()
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	adminLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cfg := redis
		cfg.GRPCListener, cfg.AdminListener = grpcLis, adminLis
		done <- app.Run(ctx, cfg)
	}()
	cc, err := rpc.Dial(grpcLis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cc.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return inventoryv1.NewInventoryServiceClient(cc), "http://" + adminLis.Addr().String()
}

func TestReserveOverGRPC(t *testing.T) {
	client, _ := MustRun(t)
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	deadline := timestamppb.New(clk.Now().Add(15 * time.Minute))
	act, unknown := newActivity(), newActivity()
	reserve := func(user, qty, order int64, key string) func() (proto.Message, error) {
		return func() (proto.Message, error) {
			return client.Reserve(ctx, &inventoryv1.ReserveRequest{
				ActivityId: act, UserId: user, Quantity: qty, OrderId: order, IdempotencyKey: key, ExpiresAt: deadline,
			})
		}
	}

	claim := func(now time.Time, limit int32) func() (proto.Message, error) {
		return func() (proto.Message, error) {
			return client.ClaimDue(ctx, &inventoryv1.ClaimDueRequest{
				ActivityIds: []int64{act}, Now: timestamppb.New(now), Limit: limit, Lease: durationpb.New(time.Minute),
			})
		}
	}
	due := func(order int64, dueAt, leaseUntil time.Time) *inventoryv1.DueEntry {
		return &inventoryv1.DueEntry{ActivityId: act, OrderId: order, DueAt: timestamppb.New(dueAt), LeaseUntil: timestamppb.New(leaseUntil)}
	}
	ack := func(e *inventoryv1.DueEntry) func() (proto.Message, error) {
		return func() (proto.Message, error) {
			return client.AckDue(ctx, &inventoryv1.AckDueRequest{Entries: []*inventoryv1.DueEntry{e}})
		}
	}

	steps := []struct {
		name     string
		call     func() (proto.Message, error)
		wantCode errcode.Code  // "" for success
		want     proto.Message // the answer, for successes
	}{
		{"reserve before preheat", reserve(1, 1, 10, "a"), errcode.NotFound, nil},
		{"preheat", func() (proto.Message, error) {
			return client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 2, PerUserLimit: 1})
		}, "", &inventoryv1.PreheatResponse{Remaining: 2}},
		{"reserve", reserve(1, 1, 11, "a"), "", &inventoryv1.ReserveResponse{OrderId: 11, Remaining: 1}},
		{"replay", reserve(1, 1, 12, "a"), "", &inventoryv1.ReserveResponse{OrderId: 11, Replayed: true, Remaining: 1}},
		{"over the limit", reserve(1, 1, 13, "b"), errcode.LimitExceeded, nil},
		{"last unit", reserve(2, 1, 14, "a"), "", &inventoryv1.ReserveResponse{OrderId: 14}},
		{"sold out", reserve(3, 1, 15, "a"), errcode.SoldOut, nil},
		{"invalid quantity", reserve(4, 0, 16, "a"), errcode.InvalidArgument, nil},
		{"missing deadline", func() (proto.Message, error) {
			return client.Reserve(ctx, &inventoryv1.ReserveRequest{ActivityId: act, UserId: 5, Quantity: 1, OrderId: 17, IdempotencyKey: "a"})
		}, errcode.InvalidArgument, nil},
		{"get reservation", func() (proto.Message, error) {
			return client.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: 11})
		}, "", &inventoryv1.Reservation{
			ActivityId: act, OrderId: 11, UserId: 1, Quantity: 1,
			Status: inventoryv1.ReservationStatus_RESERVATION_STATUS_RESERVED, ExpiresAt: deadline,
		}},
		{"unknown reservation", func() (proto.Message, error) {
			return client.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: 99})
		}, errcode.NotFound, nil},
		{"confirm", func() (proto.Message, error) {
			return client.Confirm(ctx, &inventoryv1.ConfirmRequest{ActivityId: act, OrderId: 11})
		}, "", &inventoryv1.ConfirmResponse{}},
		{"release confirmed", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 11})
		}, errcode.Conflict, nil},
		{"release", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 14})
		}, "", &inventoryv1.ReleaseResponse{Released: true}},
		{"release again", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 14})
		}, "", &inventoryv1.ReleaseResponse{Released: false}},
		{"confirm released", func() (proto.Message, error) {
			return client.Confirm(ctx, &inventoryv1.ConfirmRequest{ActivityId: act, OrderId: 14})
		}, errcode.Conflict, nil},
		{"stock", func() (proto.Message, error) {
			return client.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: act})
		}, "", &inventoryv1.GetStockResponse{Remaining: 1, Total: 2}},
		{"reserve to mark", reserve(6, 1, 18, "a"), "", &inventoryv1.ReserveResponse{OrderId: 18}},
		{"mark ordered", func() (proto.Message, error) {
			return client.MarkOrdered(ctx, &inventoryv1.MarkOrderedRequest{Orders: []*inventoryv1.OrderRef{
				{ActivityId: act, OrderId: 18}, {ActivityId: act, OrderId: 99}, {ActivityId: act, OrderId: 14},
			}})
		}, "", &inventoryv1.MarkOrderedResponse{Outcomes: []inventoryv1.MarkOutcome{
			inventoryv1.MarkOutcome_MARK_OUTCOME_MARKED, inventoryv1.MarkOutcome_MARK_OUTCOME_NOT_FOUND,
			inventoryv1.MarkOutcome_MARK_OUTCOME_MARKED,
		}}},
		{"mark ordered with an order id missing", func() (proto.Message, error) {
			return client.MarkOrdered(ctx, &inventoryv1.MarkOrderedRequest{Orders: []*inventoryv1.OrderRef{{ActivityId: act}}})
		}, errcode.InvalidArgument, nil},
		{"unpublished release of an ordered reservation", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 18, Unpublished: true})
		}, errcode.Conflict, nil},
		{"stock after the refused release", func() (proto.Message, error) {
			return client.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: act})
		}, "", &inventoryv1.GetStockResponse{Remaining: 0, Total: 2}},
		{"plain release of an ordered reservation", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 18})
		}, "", &inventoryv1.ReleaseResponse{Released: true}},
		{"reserve to release unpublished", reserve(7, 1, 19, "a"), "", &inventoryv1.ReserveResponse{OrderId: 19}},
		{"unpublished release", func() (proto.Message, error) {
			return client.Release(ctx, &inventoryv1.ReleaseRequest{ActivityId: act, OrderId: 19, Unpublished: true})
		}, "", &inventoryv1.ReleaseResponse{Released: true}},
		{"mark after the unpublished release", func() (proto.Message, error) {
			return client.MarkOrdered(ctx, &inventoryv1.MarkOrderedRequest{Orders: []*inventoryv1.OrderRef{{ActivityId: act, OrderId: 19}}})
		}, "", &inventoryv1.MarkOrderedResponse{Outcomes: []inventoryv1.MarkOutcome{inventoryv1.MarkOutcome_MARK_OUTCOME_DROP}}},
		{"reservation released as unpublished", func() (proto.Message, error) {
			return client.GetReservation(ctx, &inventoryv1.GetReservationRequest{ActivityId: act, OrderId: 19})
		}, "", &inventoryv1.Reservation{
			ActivityId: act, OrderId: 19, UserId: 7, Quantity: 1,
			Status: inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED, ExpiresAt: deadline, Unpublished: true,
		}},
		{"reserve to expire", reserve(8, 1, 20, "a"), "", &inventoryv1.ReserveResponse{OrderId: 20}},
		{"claim before the deadline", claim(deadline.AsTime().Add(-time.Millisecond), 10), "", &inventoryv1.ClaimDueResponse{}},
		{"claim at the deadline", claim(deadline.AsTime(), 10), "", &inventoryv1.ClaimDueResponse{Entries: []*inventoryv1.DueEntry{
			due(20, deadline.AsTime(), deadline.AsTime().Add(time.Minute)),
		}}},
		{"requeue", func() (proto.Message, error) {
			return client.RequeueDue(ctx, &inventoryv1.RequeueDueRequest{
				Entries: []*inventoryv1.DueEntry{due(20, deadline.AsTime(), deadline.AsTime().Add(time.Minute))},
				DueAt:   timestamppb.New(deadline.AsTime().Add(10 * time.Second)),
			})
		}, "", &inventoryv1.RequeueDueResponse{Requeued: []bool{true}}},
		{"ack of the requeued claim", ack(due(20, deadline.AsTime(), deadline.AsTime().Add(time.Minute))), "",
			&inventoryv1.AckDueResponse{Acked: []bool{false}}},
		{"claim the requeued entry", claim(deadline.AsTime().Add(10*time.Second), 10), "", &inventoryv1.ClaimDueResponse{Entries: []*inventoryv1.DueEntry{
			due(20, deadline.AsTime().Add(10*time.Second), deadline.AsTime().Add(70*time.Second)),
		}}},
		{"ack", ack(due(20, deadline.AsTime().Add(10*time.Second), deadline.AsTime().Add(70*time.Second))), "",
			&inventoryv1.AckDueResponse{Acked: []bool{true}}},
		{"claim with no limit", claim(deadline.AsTime(), 0), errcode.InvalidArgument, nil},
		{"ack without a lease", ack(&inventoryv1.DueEntry{ActivityId: act, OrderId: 20}), errcode.InvalidArgument, nil},
		{"stock of unknown activity", func() (proto.Message, error) {
			return client.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: unknown})
		}, errcode.NotFound, nil},
	}
	for _, st := range steps {
		resp, err := st.call()
		if st.wantCode != "" {
			if got := errcode.Of(err); err == nil || got != st.wantCode {
				t.Errorf("%s: got %v (code %s), want code %s", st.name, err, got, st.wantCode)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", st.name, err)
			continue
		}
		if !proto.Equal(resp, st.want) {
			t.Errorf("%s: got {%v}, want {%v}", st.name, resp, st.want)
		}
	}
}

// A batch answers each reservation as Reserve would, at its place: the
// refusals as the codes Reserve fails with, without failing the others.
func TestReserveBatchOverGRPC(t *testing.T) {
	client, _ := MustRun(t)
	ctx := context.Background()
	deadline := timestamppb.New(time.Date(2026, 11, 11, 0, 15, 0, 0, time.UTC))
	act, unknown := newActivity(), newActivity()
	if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 2, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	reservation := func(user, qty, order int64, key string) *inventoryv1.ReserveRequest {
		return &inventoryv1.ReserveRequest{ActivityId: act, UserId: user, Quantity: qty, OrderId: order, IdempotencyKey: key, ExpiresAt: deadline}
	}
	tests := []struct {
		name     string
		req      *inventoryv1.ReserveRequest
		want     *inventoryv1.ReserveResponse // nil when refused
		wantCode errcode.Code
	}{
		{"reserve", reservation(1, 1, 21, "a"), &inventoryv1.ReserveResponse{OrderId: 21, Remaining: 1}, ""},
		{"replay", reservation(1, 1, 22, "a"), &inventoryv1.ReserveResponse{OrderId: 21, Replayed: true, Remaining: 1}, ""},
		{"over the limit", reservation(1, 1, 23, "b"), nil, errcode.LimitExceeded},
		{"invalid quantity", reservation(4, 0, 24, "a"), nil, errcode.InvalidArgument},
		{"last unit", reservation(2, 1, 25, "a"), &inventoryv1.ReserveResponse{OrderId: 25}, ""},
		{"sold out", reservation(3, 1, 26, "a"), nil, errcode.SoldOut},
		{"not preheated", &inventoryv1.ReserveRequest{ActivityId: unknown, UserId: 1, Quantity: 1, OrderId: 27, IdempotencyKey: "a", ExpiresAt: deadline}, nil, errcode.NotFound},
	}
	req := &inventoryv1.ReserveBatchRequest{}
	for _, tt := range tests {
		req.Reservations = append(req.Reservations, tt.req)
	}
	resp, err := client.ReserveBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetAnswers()) != len(tests) {
		t.Fatalf("answers: got %d, want %d", len(resp.GetAnswers()), len(tests))
	}
	for i, tt := range tests {
		a := resp.GetAnswers()[i]
		if tt.want != nil {
			if !proto.Equal(a.GetReserved(), tt.want) {
				t.Errorf("%s: got {%v}, want {%v}", tt.name, a, tt.want)
			}
			continue
		}
		if got := errcode.Code(a.GetError().GetCode()); got != tt.wantCode || a.GetError().GetMessage() == "" {
			t.Errorf("%s: got {%v}, want code %s with a message", tt.name, a, tt.wantCode)
		}
	}
	if got, err := client.GetStock(ctx, &inventoryv1.GetStockRequest{ActivityId: act}); err != nil || got.GetRemaining() != 0 {
		t.Errorf("stock after the batch: got %v, %v; want 0 left", got, err)
	}

	for _, n := range []int{0, 1001} {
		req := &inventoryv1.ReserveBatchRequest{}
		for i := range n {
			req.Reservations = append(req.Reservations, reservation(int64(100+i), 1, int64(1000+i), "a"))
		}
		if _, err := client.ReserveBatch(ctx, req); errcode.Of(err) != errcode.InvalidArgument {
			t.Errorf("batch of %d: got %v, want INVALID_ARGUMENT", n, err)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	_, admin := MustRun(t)
	for _, path := range []string{"/healthz", "/readyz", telemetry.DependenciesPath} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestRunFailsWithoutRedis(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = app.Run(ctx, app.Config{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", RedisAddr: closed})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with Redis down: got %v, want a dial error", err)
	}
}

// noConsul is the discovery configuration without FLASHSALE_CONSUL_ADDR.
var noConsul = discovery.Config{CheckInterval: discovery.DefaultCheckInterval}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    app.Config
		wantErr bool
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: app.Config{GRPCAddr: ":9102", AdminAddr: ":9202", RedisAddr: "127.0.0.1:6379", Discovery: noConsul},
		},
		{
			name: "set",
			env: map[string]string{
				"FLASHSALE_GRPC_ADDR": "127.0.0.1:1", "FLASHSALE_ADMIN_ADDR": "127.0.0.1:2",
				"FLASHSALE_REDIS_ADDR": "redis:6380", "FLASHSALE_REDIS_POOL_SIZE": "128",
			},
			want: app.Config{GRPCAddr: "127.0.0.1:1", AdminAddr: "127.0.0.1:2", RedisAddr: "redis:6380", RedisPoolSize: 128, Discovery: noConsul},
		},
		{name: "negative pool", env: map[string]string{"FLASHSALE_REDIS_POOL_SIZE": "-1"}, wantErr: true},
		{name: "pool not a number", env: map[string]string{"FLASHSALE_REDIS_POOL_SIZE": "many"}, wantErr: true},
		{
			name: "redis cluster",
			env:  map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379", "FLASHSALE_REDIS_CLUSTER": "true"},
			want: app.Config{GRPCAddr: ":9102", AdminAddr: ":9202", RedisAddr: "r1:6379,r2:6379", RedisCluster: true, Discovery: noConsul},
		},
		{name: "redis addr without port", env: map[string]string{"FLASHSALE_REDIS_ADDR": "redis"}, wantErr: true},
		{name: "redis list without the cluster flag", env: map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := config.FromMap(tt.env)
			got := app.ConfigFromEnv(env)
			if err := env.Err(); (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("config: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// With FLASHSALE_REDIS_CLUSTER the service runs on Redis Cluster:
// activities whose keys live on different primaries sell over gRPC, and
// the stock gauge reads each from its primary.
func TestRunOnRedisCluster(t *testing.T) {
	client, admin := MustRunOn(t, app.Config{RedisAddr: strings.Join(stack.RedisClusterAddrs, ","), RedisCluster: true})
	ctx := context.Background()
	cc := stack.RedisClusterClient(t)
	byNode := map[string]int64{} // primary -> an activity whose keys it holds
	for act := newActivity(); len(byNode) < len(stack.RedisClusterAddrs); act = newActivity() {
		node, err := cc.MasterForKey(ctx, "{act:"+strconv.FormatInt(act, 10)+"}")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byNode[node.Options().Addr]; !ok {
			byNode[node.Options().Addr] = act
		}
	}
	deadline := timestamppb.New(time.Now().Add(time.Hour))
	for _, act := range byNode {
		if _, err := client.Preheat(ctx, &inventoryv1.PreheatRequest{ActivityId: act, Stock: 5, PerUserLimit: 2}); err != nil {
			t.Fatal(err)
		}
		res, err := client.Reserve(ctx, &inventoryv1.ReserveRequest{ActivityId: act, UserId: 1, Quantity: 2, OrderId: act, IdempotencyKey: "k", ExpiresAt: deadline})
		if err != nil || res.GetRemaining() != 3 {
			t.Fatalf("reserve in activity %d: %v (%v), want 3 left", act, res, err)
		}
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range byNode {
		want := fmt.Sprintf(`inventory_stock_remaining{activity_id="%d"} 3`, act)
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
