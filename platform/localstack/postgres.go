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
	// --no-sync and the fsync=off settings below trade crash safety for
	// speed: this server lives for one test run or one demo.
	initdb := exec.CommandContext(ctx, bins.initdb, "-D", data, "-U", s.pgUser,
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("localstack: initdb: %w\n%s", err, out)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("localstack: free port: %w", err)
		}
		cmd := exec.Command(bins.postgres, "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+data,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=400", "-c", "shared_buffers=256MB")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		c, err := s.procs.spawn("postgres", filepath.Join(s.dir, "postgres.log"), cmd)
		if err != nil {
			return err
		}
		s.pgPort = port
		if lastErr = waitPostgres(ctx, c, s.PostgresURL("postgres")); lastErr == nil {
			s.postgres = c
			return s.createDatabases(ctx, databases)
		}
		_ = c.stop(syscall.SIGKILL)
	}
	return lastErr
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
	conn, err := pgx.Connect(ctx, s.PostgresURL("postgres"))
	if err != nil {
		return fmt.Errorf("localstack: %w", err)
	}
	defer conn.Close(ctx)
	for _, db := range dbs {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("localstack: create database %s: %w", db, err)
		}
	}
	return nil
}
