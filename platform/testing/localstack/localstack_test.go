package localstack_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/ids"
	"github.com/flashsale/flashsale/platform/testing/localstack"
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

// A stack asked for a Redis Cluster has every slot served by one of its
// primaries, and Close stops all of them.
func TestStackStartsARedisCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{RedisCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.RedisClusterAddrs) != 3 {
		t.Fatalf("cluster addresses: got %v, want 3", s.RedisClusterAddrs)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.RedisClusterAddrs[:1]})
	shards, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	covered, owners := 0, map[string]bool{}
	for _, sh := range shards {
		covered += sh.End - sh.Start + 1
		owners[sh.Nodes[0].Addr] = true
	}
	if covered != 16384 || len(owners) != 3 {
		t.Fatalf("slots: %d covered by %d primaries, want 16384 by 3", covered, len(owners))
	}
	// Keys hashing to every primary are written through the one seed.
	for i := range 64 {
		if err := rdb.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatalf("set through the cluster client: %v", err)
		}
	}
	var used atomic.Int32 // ForEachMaster calls in parallel
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if n > 0 {
			used.Add(1)
		}
		return err
	})
	if err != nil || used.Load() != 3 {
		t.Fatalf("primaries holding keys: got %d (%v), want all 3", used.Load(), err)
	}
	// The client would keep reloading the slot map from stopped nodes.
	rdb.Close()

	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, addr := range s.RedisClusterAddrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("cluster node %s still accepts connections after Close", addr)
		}
	}
}

func TestNodeIDWrapsWithinTheReplicaRange(t *testing.T) {
	seen := map[int64]bool{}
	for range 3 * (ids.MaxReplica + 1) {
		n := localstack.NodeID()
		if n < 0 || n > ids.MaxReplica {
			t.Fatalf("node id %d out of 0..%d", n, ids.MaxReplica)
		}
		seen[n] = true
	}
	if len(seen) != ids.MaxReplica+1 {
		t.Fatalf("%d distinct node ids in three rounds, want %d", len(seen), ids.MaxReplica+1)
	}
}

// TestPostgresImmediateShutdownKeepsWhatWasCommitted: the stack's
// Postgres stopped as by a crash right after a burst of commits comes back
// on the same address with every acknowledged row, and a pool reconnects.
func TestPostgresImmediateShutdownKeepsWhatWasCommitted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{Databases: []string{"things"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool, err := pgxpool.New(ctx, s.PostgresURL("things"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE TABLE acked (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if _, err := pool.Exec(ctx, "INSERT INTO acked VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.StopPostgres(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("the pool still reaches a stopped Postgres")
	}
	if err := s.StartPostgres(ctx); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM acked").Scan(&got); err != nil || got != n {
		t.Fatalf("after the restart: %d rows (%v), want the %d acknowledged", got, err, n)
	}
}

// TestSpawnedProcessesStopFirst: a stack without a broker still has its
// servers; a program it spawned runs in a process group of its own (a
// Ctrl-C at the terminal does not reach it), and Close stops it with
// SIGTERM before the servers.
func TestSpawnedProcessesStopFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Config{NoBroker: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.KafkaBrokers) != 0 || s.Kafka() != nil {
		t.Errorf("NoBroker: brokers %v started", s.KafkaBrokers)
	}
	// The shell writes its process group, then what it was stopped
	// with, into out (the stack's directory goes with Close); it would
	// otherwise sleep a minute.
	out := filepath.Join(t.TempDir(), "out")
	p, err := s.Spawn("sleeper", exec.Command("sh", "-c",
		`trap 'echo terminated >>"$0"; exit 0' TERM; ps -o pgid= $$ >"$0"; sleep 60 & wait`, out))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got, _ = os.ReadFile(out)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("not running: %v", err)
	}
	if pgid := strings.TrimSpace(string(got)); pgid == "" || pgid == strconv.Itoa(syscall.Getpgrp()) {
		t.Errorf("the spawned process's group is %q, the owner's is %d", pgid, syscall.Getpgrp())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Close returned with the spawned process running")
	}
	if got, _ := os.ReadFile(out); !strings.Contains(string(got), "terminated") {
		t.Errorf("the process was not stopped with SIGTERM: it wrote %q", got)
	}
}
