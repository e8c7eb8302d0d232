package redisclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/redisclient"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{RedisCluster: true}, func(s *localstack.Stack) { stack = s })
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		want      redisclient.Config
		wantAddrs []string
		wantErr   string // a part of the message; empty: valid
	}{
		{name: "default", env: nil,
			want: redisclient.Config{Addr: "127.0.0.1:6379"}, wantAddrs: []string{"127.0.0.1:6379"}},
		{name: "one server", env: map[string]string{"FLASHSALE_REDIS_ADDR": "redis:6380"},
			want: redisclient.Config{Addr: "redis:6380"}, wantAddrs: []string{"redis:6380"}},
		{name: "cluster through one endpoint", env: map[string]string{"FLASHSALE_REDIS_ADDR": "cfg.cache.example:6379", "FLASHSALE_REDIS_CLUSTER": "true"},
			want: redisclient.Config{Addr: "cfg.cache.example:6379", Cluster: true}, wantAddrs: []string{"cfg.cache.example:6379"}},
		{name: "cluster seeds", env: map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379, r2:6379,r3:7000", "FLASHSALE_REDIS_CLUSTER": "true"},
			want: redisclient.Config{Addr: "r1:6379, r2:6379,r3:7000", Cluster: true}, wantAddrs: []string{"r1:6379", "r2:6379", "r3:7000"}},
		{name: "a list without the cluster flag", env: map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,r2:6379"},
			wantErr: "set FLASHSALE_REDIS_CLUSTER=true"},
		{name: "no port", env: map[string]string{"FLASHSALE_REDIS_ADDR": "redis"},
			wantErr: `"redis" is not host:port`},
		{name: "no host", env: map[string]string{"FLASHSALE_REDIS_ADDR": ":6379"},
			wantErr: "no host"},
		{name: "bad port", env: map[string]string{"FLASHSALE_REDIS_ADDR": "redis:http"},
			wantErr: "not 1..65535"},
		{name: "empty seed", env: map[string]string{"FLASHSALE_REDIS_ADDR": "r1:6379,,r2:6379", "FLASHSALE_REDIS_CLUSTER": "true"},
			wantErr: `"" is not host:port`},
		{name: "cluster flag not a boolean", env: map[string]string{"FLASHSALE_REDIS_CLUSTER": "cluster"},
			wantErr: "FLASHSALE_REDIS_CLUSTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := config.FromMap(tt.env)
			got := redisclient.ConfigFromEnv(env)
			err := env.Err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error: got %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("config: got %+v, want %+v", got, tt.want)
			}
			addrs, err := got.Addrs()
			if err != nil || strings.Join(addrs, " ") != strings.Join(tt.wantAddrs, " ") {
				t.Errorf("addrs: got %q (%v), want %q", addrs, err, tt.wantAddrs)
			}
		})
	}
}

// Dial returns the client the setting asks for, and it works: a cluster
// client reaches keys on every primary.
func TestDialReturnsTheClientOfTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		cfg     redisclient.Config
		cluster bool
	}{
		{"one server", redisclient.Config{Addr: stack.RedisAddr}, false},
		{"cluster from one seed", redisclient.Config{Addr: stack.RedisClusterAddrs[0], Cluster: true}, true},
		{"cluster from every node", redisclient.Config{Addr: strings.Join(stack.RedisClusterAddrs, ","), Cluster: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rdb, err := redisclient.Dial(ctx, tt.cfg, 8)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, isCluster := rdb.(*redis.ClusterClient); isCluster != tt.cluster {
				t.Fatalf("client %T, want a cluster client: %v", rdb, tt.cluster)
			}
			for _, k := range []string{"{a}:x", "{b}:x", "{c}:x", "{d}:x"} {
				if err := rdb.Set(ctx, k, "v", time.Minute).Err(); err != nil {
					t.Fatalf("set %s: %v", k, err)
				}
				if got := rdb.Get(ctx, k).Val(); got != "v" {
					t.Fatalf("get %s: got %q, want v", k, got)
				}
			}
		})
	}
}

// A cluster setting pointed at a single server, or the reverse, fails at
// start with what to change, not with MOVED errors under load.
func TestDialRefusesAMismatchedServer(t *testing.T) {
	tests := []struct {
		name    string
		cfg     redisclient.Config
		wantErr string
	}{
		{"cluster flag on a single server", redisclient.Config{Addr: stack.RedisAddr, Cluster: true}, "cluster support disabled"},
		{"single client on a cluster node", redisclient.Config{Addr: stack.RedisClusterAddrs[0]}, "set FLASHSALE_REDIS_CLUSTER=true"},
		{"a list without the flag", redisclient.Config{Addr: strings.Join(stack.RedisClusterAddrs, ",")}, "set FLASHSALE_REDIS_CLUSTER=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rdb, err := redisclient.Dial(ctx, tt.cfg, 0)
			if err == nil {
				rdb.Close()
				t.Fatalf("Dial succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error: got %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
