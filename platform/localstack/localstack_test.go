package localstack_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/localstack"
)

func TestStackStartsAndTearsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{Databases: []string{"things"}, Topics: []string{"t1"}, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()

	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr})
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}

	conn, err := pgx.Connect(ctx, s.PostgresURL("things"))
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("postgres query: %v %d", err, one)
	}
	conn.Close(ctx)

	w := &kafka.Writer{Addr: kafka.TCP(s.KafkaBrokers...), Topic: "t1", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("a"), Value: []byte("b")}); err != nil {
		t.Fatalf("kafka write: %v", err)
	}
	w.Close()
	parts, err := kafka.DialContext(ctx, "tcp", s.KafkaBrokers[0])
	if err != nil {
		t.Fatal(err)
	}
	ps, err := parts.ReadPartitions("t1")
	parts.Close()
	if err != nil || len(ps) != 3 {
		t.Fatalf("partitions of t1: got %d (%v), want 3", len(ps), err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stack dir %s still exists after Close (err %v)", dir, err)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("redis still answers after Close")
	}
}
