package localstack_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// TestFaultsActOnTheRealWire: with Config.Faults every connection to
// Redis, Postgres and the broker crosses a toxiproxy proxy, and each kind
// of fault does what it says to real clients, then lifts.
func TestFaultsActOnTheRealWire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{Databases: []string{"things"}, Topics: []string{"t"}, Faults: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr, MaxRetries: -1})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	must := func(lift func() error, err error) func() error {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return lift
	}

	t.Run("latency delays every answer", func(t *testing.T) {
		lift := must(s.Fault(localstack.Redis, localstack.Fault{Kind: localstack.Latency, Latency: 150 * time.Millisecond}))
		start := time.Now()
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Errorf("a PING through 150 ms of latency took %s", took)
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("down resets, and lifts", func(t *testing.T) {
		lift := must(s.Fault(localstack.Redis, localstack.Fault{Kind: localstack.Down}))
		if err := rdb.Ping(ctx).Err(); err == nil {
			t.Fatal("PING through a downed proxy answered")
		}
		if _, err := s.Fault(localstack.Redis, localstack.Fault{Kind: localstack.Latency, Latency: time.Second}); err == nil {
			t.Error("a second fault on one target was accepted")
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after the lift: %v", err)
		}
	})

	t.Run("blackhole holds the call until its deadline", func(t *testing.T) {
		lift := must(s.Fault(localstack.Postgres, localstack.Fault{Kind: localstack.Blackhole}))
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := pgx.Connect(cctx, s.PostgresURL("things"))
		ccancel()
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("connecting through a blackhole: %v, want the deadline to end it", err)
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, s.PostgresURL("things"))
		if err != nil {
			t.Fatalf("connecting after the lift: %v", err)
		}
		conn.Close(ctx)
	})

	t.Run("the broker is reached only through its proxy", func(t *testing.T) {
		lift := must(s.Fault(localstack.Kafka, localstack.Fault{Kind: localstack.Down}))
		w := &kafka.Writer{Addr: kafka.TCP(s.KafkaBrokers...), Topic: "t", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 1}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		err := w.WriteMessages(wctx, kafka.Message{Value: []byte("x")})
		wcancel()
		if err == nil {
			t.Error("a write reached the broker while its proxy was down")
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
		var werr error
		for range 100 { // the writer redials on its next attempts
			if werr = w.WriteMessages(ctx, kafka.Message{Value: []byte("y")}); werr == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if werr != nil {
			t.Errorf("writes after the lift: %v", werr)
		}
		w.Close()
		w2 := &kafka.Writer{Addr: kafka.TCP(s.KafkaBrokers...), Topic: "t", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 1}
		if err := w2.WriteMessages(ctx, kafka.Message{Value: []byte("z")}); err != nil {
			t.Errorf("a new writer after the lift: %v", err)
		}
		w2.Close()
	})

	t.Run("bandwidth slows a large answer", func(t *testing.T) {
		big := strings.Repeat("x", 64<<10)
		if err := rdb.Set(ctx, "big", big, 0).Err(); err != nil {
			t.Fatal(err)
		}
		lift := must(s.Fault(localstack.Redis, localstack.Fault{Kind: localstack.Bandwidth, RateKB: 128}))
		start := time.Now()
		if got, err := rdb.Get(ctx, "big").Result(); err != nil || len(got) != len(big) {
			t.Fatalf("GET through 128 KB/s: %d bytes, %v", len(got), err)
		}
		if took := time.Since(start); took < 400*time.Millisecond {
			t.Errorf("64 KB through 128 KB/s took %s", took)
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a link between services gets a proxy of its own", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		go func() {
			for {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); b := make([]byte, 5); _, _ = c.Read(b); _, _ = c.Write(b) }()
			}
		}()
		addr, err := s.Proxy("inventory", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		echo := func() (string, error) {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return "", err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				return "", err
			}
			b := make([]byte, 5)
			n, err := io.ReadFull(c, b)
			return string(b[:n]), err
		}
		lift := must(s.Fault("inventory", localstack.Fault{Kind: localstack.Down}))
		if got, err := echo(); err == nil {
			t.Errorf("echo through a downed link answered %q", got)
		}
		if err := lift(); err != nil {
			t.Fatal(err)
		}
		if got, err := echo(); err != nil || got != "hello" {
			t.Errorf("echo through the link after the lift: %q, %v", got, err)
		}
	})

	for _, bad := range []localstack.Fault{{Kind: "flood"}, {Kind: localstack.Latency}, {Kind: localstack.Bandwidth}} {
		if _, err := s.Fault(localstack.Redis, bad); err == nil {
			t.Errorf("fault %+v accepted", bad)
		}
	}
}
