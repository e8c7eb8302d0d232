// Package servicetest holds the helpers the order service's integration
// tests share: running services on free ports until the test ends, and
// reading the dead-letter topic.
package servicetest

import (
	"context"
	"net"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	inventoryapp "github.com/flashsale/flashsale/services/inventory/app"
)

// MustListen listens on a free loopback port.
func MustListen(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}

// MustRun runs run until the test ends (failing the test if it returns an
// error) and returns once its dependencies are up (GET
// telemetry.DependenciesPath on admin answers 200).
func MustRun(tb testing.TB, admin net.Listener, run func(context.Context) error) {
	tb.Helper()
	localstack.MustRun(tb, "service", "http://"+admin.Addr().String()+telemetry.DependenciesPath, localstack.Status200, run)
}

// MustInventory runs the real inventory service on the Redis at redisAddr
// until the test ends and returns its gRPC address once it is ready.
func MustInventory(tb testing.TB, redisAddr string) string {
	tb.Helper()
	grpcLis, admin := MustListen(tb), MustListen(tb)
	MustRun(tb, admin, func(ctx context.Context) error {
		return inventoryapp.Run(ctx, inventoryapp.Config{GRPCListener: grpcLis, AdminListener: admin, RedisAddr: redisAddr})
	})
	return grpcLis.Addr().String()
}

// MustReadDeadLetters reads topic from its start, across its partitions,
// until it has n messages that keep accepts, and returns them in the
// order read (the order of offsets within a partition).
func MustReadDeadLetters(tb testing.TB, brokers []string, topic, group string, n int, keep func(kafkago.Message) bool) []kafkago.Message {
	tb.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: brokers, Topic: topic, GroupID: group, StartOffset: kafkago.FirstOffset, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafkago.Message
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			tb.Fatalf("dead letters on %s: got %d, want %d: %v", topic, len(out), n, err)
		}
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// Headers returns m's headers by key.
func Headers(m kafkago.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}
