package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// mustStart starts a stack that is closed when tb ends.
func mustStart(tb testing.TB, cfg Config) *Stack {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func mustServerCPU(tb testing.TB, s *Stack) ServerCPU {
	tb.Helper()
	cpu, err := s.ServerCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return cpu
}

// redisOwnCPU is the CPU time a redis-server reports for itself (INFO
// cpu: getrusage of the whole process, every thread included).
func redisOwnCPU(ctx context.Context, tb testing.TB, rdb *redis.Client) time.Duration {
	tb.Helper()
	info, err := rdb.InfoMap(ctx, "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var sum time.Duration
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		secs, err := strconv.ParseFloat(info["CPU"][k], 64)
		if err != nil {
			tb.Fatalf("INFO cpu %s: %v (%v)", k, err, info)
		}
		sum += time.Duration(secs * float64(time.Second))
	}
	return sum
}

// The Redis figure is the single server's and every cluster node's CPU,
// as each server accounts for itself: a node left out, a field misread or
// the wrong clock-tick unit puts it far outside the slack.
func TestServerCPUAgreesWithRedisOwnAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := mustStart(t, Config{RedisCluster: true})
	var servers []*redis.Client
	for _, addr := range append([]string{s.RedisAddr}, s.RedisClusterAddrs...) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		servers = append(servers, rdb)
	}
	ownSum := func() time.Duration {
		var sum time.Duration
		for _, rdb := range servers {
			sum += redisOwnCPU(ctx, t, rdb)
		}
		return sum
	}

	before := mustServerCPU(t, s)
	// Each server runs a busy Lua loop until it has itself used burn
	// more CPU, however fast the machine is.
	const burn = 300 * time.Millisecond
	for _, rdb := range servers {
		until := redisOwnCPU(ctx, t, rdb) + burn
		for redisOwnCPU(ctx, t, rdb) < until {
			if err := rdb.Eval(ctx, "local x = 0 for i = 1, 1000000 do x = x + i end return x", nil).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	low := ownSum()
	got := mustServerCPU(t, s)
	high := ownSum()

	// /proc counts whole clock ticks of user and of system time,
	// each rounded down, for every server.
	slack := time.Duration(2*len(servers)) * time.Second / clockTicks
	if got.Redis < low-slack || got.Redis > high+slack {
		t.Errorf("Redis CPU: got %s, want between %s and %s, the servers' own account (slack %s)", got.Redis, low, high, slack)
	}
	if grew, want := got.Sub(before).Redis, time.Duration(len(servers))*burn-slack; grew < want {
		t.Errorf("Redis CPU grew %s over the load, want at least %s", grew, want)
	}
}

// The Postgres figure counts the backends the postmaster forked, and
// keeps what a backend used after its connection closes and it ends.
func TestServerCPUCountsPostgresBackendsAlsoAfterTheyEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := mustStart(t, Config{Databases: []string{"cpu"}})
	conn, err := pgx.Connect(ctx, s.PostgresURL("cpu"))
	if err != nil {
		t.Fatal(err)
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	// The backend runs queries until it has used clearly more CPU than
	// the postmaster and its helpers use in the test's lifetime.
	const burn = 50 // clock ticks, half a second
	for {
		table, err := readProcTable()
		if err != nil {
			t.Fatal(err)
		}
		if table.ticks[backend] >= burn {
			break
		}
		if _, err := conn.Exec(ctx, "SELECT sum(i) FROM generate_series(1, 1000000) AS i"); err != nil {
			t.Fatal(err)
		}
	}
	live := mustServerCPU(t, s)
	if want := time.Duration(burn) * time.Second / clockTicks; live.Postgres < want {
		t.Errorf("Postgres CPU with the busy backend running: got %s, want at least the backend's %s", live.Postgres, want)
	}

	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The backend's /proc entry goes when the postmaster reaps it, after
	// the kernel has added its CPU time to the postmaster's.
	proc := "/proc/" + strconv.Itoa(backend)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(proc); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still in /proc 10s after its connection closed", backend)
		}
	}
	if ended := mustServerCPU(t, s); ended.Postgres < live.Postgres {
		t.Errorf("Postgres CPU after the backend ended: got %s, want at least %s as while it ran", ended.Postgres, live.Postgres)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if cpu, err := s.ServerCPU(); err == nil {
		t.Errorf("ServerCPU of a closed stack: got %+v, want an error", cpu)
	}
}

// A process's CPU time counts every generation below it and nothing
// beside it.
func TestTreeCPUSumsDescendantsOnly(t *testing.T) {
	// 10 ─┬─ 11 ── 12 ── 13
	//     └─ 14
	// 20 ── 21 (another tree)
	table := procTable{
		ticks:    map[int]uint64{10: 1, 11: 10, 12: 100, 13: 1000, 14: 10000, 20: 100000, 21: 1000000},
		children: map[int][]int{1: {10, 20}, 10: {11, 14}, 11: {12}, 12: {13}, 20: {21}},
	}
	for _, tc := range []struct {
		pid   int
		ticks uint64
	}{
		{10, 11111}, {11, 1110}, {13, 1000}, {14, 10000}, {20, 1100000},
	} {
		t.Run(fmt.Sprint(tc.pid), func(t *testing.T) {
			if got, want := table.treeCPU(tc.pid), time.Duration(tc.ticks)*10*time.Millisecond; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}
