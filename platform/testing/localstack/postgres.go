package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

type pgBinaries struct{ initdb, postgres string }

// postgresDirs are searched after PATH. Debian installs the server
// binaries outside PATH, one directory per major version; the newest wins.
func postgresDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	return dirs
}

func findPostgres(dirs []string) (pgBinaries, error) {
	initdb, err1 := lookBin("initdb", dirs...)
	postgres, err2 := lookBin("postgres", dirs...)
	if err := errors.Join(err1, err2); err != nil {
		return pgBinaries{}, fmt.Errorf("localstack: PostgreSQL server binaries (initdb, postgres) not found: %s", installHint)
	}
	return pgBinaries{initdb: initdb, postgres: postgres}, nil
}

// serverCredential is who runs initdb and postgres. Both refuse to run as
// root, so under root they run as the unprivileged "postgres" user that
// Debian's package creates.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("localstack: running as root, and PostgreSQL refuses root: need the unprivileged user \"postgres\" (`apt-get install postgresql` creates it, or `useradd --system postgres`)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Stack) startPostgres(ctx context.Context, bins pgBinaries, databases []string) error {
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "pg")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fmt.Errorf("localstack: %w", err)
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("localstack: chown pg dir: %w", err)
		}
	}
	s.pgUser = "flashsale"
	// --no-sync trades crash safety for speed, as the settings of
	// runPostgres do.
	initdb := exec.CommandContext(ctx, bins.initdb, "-D", data, "-U", s.pgUser,
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("localstack: initdb: %w\n%s", err, out)
	}

	s.pgBin, s.pgCred = bins.postgres, cred
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("localstack: free port: %w", err)
		}
		s.pgPort = port
		if lastErr = s.runPostgres(ctx); lastErr == nil {
			return s.createDatabases(ctx, databases)
		}
	}
	return lastErr
}

// runPostgres starts the server on the stack's data directory and port
// and waits until it answers.
func (s *Stack) runPostgres(ctx context.Context) error {
	data := filepath.Join(s.dir, "pg")
	// fsync=off and full_page_writes=off trade safety against a machine
	// crash for speed: this server lives for one test run or one demo.
	// Commits stay synchronous (with fsync off that costs one write to
	// the kernel), so an immediate shutdown (StopPostgres) loses nothing
	// that was acknowledged, as on a production server; with
	// synchronous_commit=off it lost the last few
	// (TestPostgresImmediateShutdownKeepsWhatWasCommitted).
	args := []string{"-D", data, "-p", strconv.Itoa(s.pgPort),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + data,
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=256MB"}
	if s.pgStatements {
		// Each top-level statement's calls and time; a function's
		// statements count in its caller's.
		args = append(args, "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=top")
	}
	cmd := exec.Command(s.pgBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.pgCred}
	c, err := s.procs.spawn("postgres", filepath.Join(s.dir, "postgres.log"), cmd)
	if err != nil {
		return err
	}
	if err := waitPostgres(ctx, c, s.postgresURL(s.pgPort, "postgres")); err != nil {
		_ = c.stop(syscall.SIGKILL)
		return err
	}
	s.mu.Lock()
	s.postgres = c
	s.mu.Unlock()
	return nil
}

// StopPostgres shuts the server down the way a crash or a pod kill does
// (PostgreSQL's immediate mode: no checkpoint, connections cut; the next
// start recovers from the write-ahead log). Connections fail until
// StartPostgres.
func (s *Stack) StopPostgres() error {
	return s.postgresChild().stop(syscall.SIGQUIT)
}

// postgresChild is the running (or last) server process.
func (s *Stack) postgresChild() *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.postgres
}

// StartPostgres starts the server again after StopPostgres, on the same
// port and data, and returns once it answers (crash recovery included).
func (s *Stack) StartPostgres(ctx context.Context) error {
	return s.runPostgres(ctx)
}

func waitPostgres(ctx context.Context, c *child, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.failed(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, url)
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("localstack: postgres not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Stack) createDatabases(ctx context.Context, dbs []string) error {
	conn, err := pgx.Connect(ctx, s.postgresURL(s.pgPort, "postgres"))
	if err != nil {
		return fmt.Errorf("localstack: %w", err)
	}
	defer conn.Close(ctx)
	if s.pgStatements {
		if _, err := conn.Exec(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
			return fmt.Errorf("localstack: pg_stat_statements: %w", err)
		}
	}
	for _, db := range dbs {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("localstack: create database %s: %w", db, err)
		}
	}
	return nil
}
