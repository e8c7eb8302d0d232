// Package localstack starts the platform's real dependencies on one machine:
// a redis-server (and, on request, a three-node Redis Cluster) and a
// PostgreSQL server as child processes in a temporary directory on free
// loopback ports, and an in-process Kafka-protocol broker (franz-go's
// kfake) that clients reach over TCP like a real broker.
//
// The demo, `make up` and every integration test use it, so what the tests
// exercise is what the demo runs; the split platform (deploy/local/split)
// also runs the services' binaries as its children (Spawn). Everything it
// starts is torn down by Close,
// and, should the process die without calling Close, by the kernel: each
// child is started with a parent-death signal, and the next Start removes
// directories left behind by dead owners.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

// Config says what the stack must hold before Start returns.
type Config struct {
	// Databases are created in Postgres (each service owns one).
	Databases []string
	// Topics are created in the broker with Partitions partitions each.
	Topics     []string
	Partitions int
	// RedisCluster also starts a three-node Redis Cluster (beside the
	// single redis-server), for tests that must show the scripts and
	// pipelines work across slots and nodes. Only they pay for it.
	RedisCluster bool
	// Faults routes every connection to Redis, Postgres and the broker
	// through a fault proxy (RedisAddr, PostgresURL and KafkaBrokers name
	// the proxies), so Stack.Fault can slow, cut or blackhole it on the
	// real wire. The Redis Cluster, whose nodes advertise their own
	// addresses, is not proxied.
	Faults bool
	// NoBroker starts no Kafka-protocol broker: the caller runs its own
	// (deploy/local/split runs one as a process of its own), and
	// KafkaBrokers stays empty.
	NoBroker bool
	// Statements loads pg_stat_statements into Postgres, so what each
	// statement cost can be read from its view (the demo's -pgstat); the
	// extension is created in the postgres database.
	Statements bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Stack is a running set of dependencies.
type Stack struct {
	// RedisAddr is host:port of the redis-server.
	RedisAddr string
	// RedisClusterAddrs are host:port of the Redis Cluster's primaries
	// when Config.RedisCluster asked for one, else empty.
	RedisClusterAddrs []string
	// KafkaBrokers are the broker addresses (host:port).
	KafkaBrokers []string
	// KafkaDurability is the most the broker can give a topic: it is one
	// broker, so one copy. Services creating topics on the stack use it
	// instead of the production default, which one broker refuses.
	KafkaDurability pkafka.Durability

	dir    string
	faults *proxies // nil unless Config.Faults
	// redisDirect is the redis-server's own address (RedisAddr names the
	// proxy when Config.Faults is set).
	redisDirect  string
	pgProxy      int // the port PostgresURL names when proxied
	pgPort       int
	pgUser       string
	pgBin        string
	pgCred       *syscall.Credential
	pgStatements bool       // Config.Statements
	mu           sync.Mutex // guards postgres, which StartPostgres replaces
	procs        *procRunner
	redis        *child
	redisBin     string
	postgres     *child
	kafka        *kfake.Cluster
	// spawned are the processes Spawn started.
	spawned []*Process
	// clusterNodes are the Redis Cluster's servers, if any.
	clusterNodes []*child

	closeOnce sync.Once
	closeErr  error
}

// PostgresURL is the connection URL of database db (through the fault
// proxy when Config.Faults is set).
func (s *Stack) PostgresURL(db string) string {
	if s.pgProxy != 0 {
		return s.postgresURL(s.pgProxy, db)
	}
	return s.postgresURL(s.pgPort, db)
}

func (s *Stack) postgresURL(port int, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.pgUser, port, db)
}

// Kafka is the in-process broker, exposed so tests can inject broker
// failures through kfake's control hooks.
func (s *Stack) Kafka() *kfake.Cluster { return s.kafka }

// Dir is the stack's temporary directory (logs live there).
func (s *Stack) Dir() string { return s.dir }

const dirPrefix = "flashsale-stack-"

// Start brings the stack up. On error, whatever was started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	// Find every binary before starting anything, so a missing one is
	// reported at once with what to install.
	redisBin, err := findRedis(redisDirs)
	if err != nil {
		return nil, err
	}
	pgBins, err := findPostgres(postgresDirs())
	if err != nil {
		return nil, err
	}
	removeStaleDirs()

	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("localstack: temp dir: %w", err)
	}
	// The Postgres server may run as another user, who must reach its
	// data directory below this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	s := &Stack{dir: dir, procs: newProcRunner()}
	if cfg.Faults {
		s.faults = newProxies()
	}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	started := time.Now()
	if err := s.startRedis(ctx, redisBin); err != nil {
		return nil, err
	}
	if s.faults != nil {
		if s.RedisAddr, err = s.faults.add(Redis, s.RedisAddr); err != nil {
			return nil, err
		}
	}
	log.Info("redis ready", "addr", s.RedisAddr)
	if cfg.RedisCluster {
		if err := s.startRedisCluster(ctx, redisBin); err != nil {
			return nil, err
		}
		log.Info("redis cluster ready", "addrs", strings.Join(s.RedisClusterAddrs, ","))
	}
	s.pgStatements = cfg.Statements
	if err := s.startPostgres(ctx, pgBins, cfg.Databases); err != nil {
		return nil, err
	}
	if s.faults != nil {
		addr, err := s.faults.add(Postgres, fmt.Sprintf("127.0.0.1:%d", s.pgPort))
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		s.pgProxy, _ = strconv.Atoi(port)
	}
	log.Info("postgres ready", "url", s.PostgresURL("postgres"))
	if cfg.NoBroker {
		return s, nil
	}
	if err := s.startKafka(ctx, cfg.Topics, cfg.Partitions); err != nil {
		return nil, err
	}
	log.Info("kafka broker ready", "brokers", strings.Join(s.KafkaBrokers, ","), "took", time.Since(started).Round(time.Millisecond))
	return s, nil
}

// Close stops everything and removes the temporary directory. It is safe
// to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		// The spawned programs first: they may still be using the
		// servers as they stop.
		errs := s.stopSpawned()
		if s.kafka != nil {
			s.kafka.Close()
		}
		if s.faults != nil {
			s.faults.close()
		}
		if pg := s.postgresChild(); pg != nil {
			// SIGINT is Postgres's "fast shutdown": it ends sessions
			// and exits without waiting for clients.
			errs = append(errs, pg.stop(syscall.SIGINT))
		}
		for _, c := range s.clusterNodes {
			errs = append(errs, c.stop(syscall.SIGTERM))
		}
		if s.redis != nil {
			errs = append(errs, s.redis.stop(syscall.SIGTERM))
		}
		s.procs.close()
		errs = append(errs, os.RemoveAll(s.dir))
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// RunTests is a TestMain body: it starts a stack, hands it to set, runs the
// tests and tears the stack down, also when the run is interrupted. A stack
// that cannot start fails the run with the reason; it never skips.
func RunTests(m *testing.M, cfg Config, set func(*Stack)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = s.Close()
		os.Exit(130)
	}()
	set(s)
	code := m.Run()
	signal.Stop(sigs)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "localstack: close:", err)
	}
	os.Exit(code)
}

// removeStaleDirs deletes stack directories whose owning process is gone
// (a test binary killed with SIGKILL cannot clean up after itself).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
