package main

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

func TestCPULine(t *testing.T) {
	parts := []cpuPart{{name: "platform process", used: 82 * time.Second}, {name: "redis-server", used: 16 * time.Second}, {name: "postgres", used: 5 * time.Second}}
	split := []cpuPart{{name: "platform process", used: 62 * time.Second}, {name: loadGenerator, used: 20 * time.Second, apart: true}, parts[1], parts[2]}
	for _, tc := range []struct {
		name  string
		parts []cpuPart
		buys  int
		want  string
	}{
		{"every part, per buy", parts, 200_000,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores), redis-server 16.0 s (0.40), postgres 5.0 s (0.12); per answered buy 410 µs + 80 µs + 25 µs = 515 µs"},
		{"the load generator apart", split, 200_000,
			"CPU during the replay (40.0 s): platform process 62.0 s (1.55 cores), load generator 20.0 s (0.50), redis-server 16.0 s (0.40), postgres 5.0 s (0.12); " +
				"per answered buy 310 µs + 80 µs + 25 µs = 415 µs (and the load generator 100 µs)"},
		{"no buy answered", parts, 0,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores), redis-server 16.0 s (0.40), postgres 5.0 s (0.12)"},
		{"the process alone", parts[:1], 200_000,
			"CPU during the replay (40.0 s): platform process 82.0 s (2.05 cores); per answered buy 410 µs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuLine(40*time.Second, tc.parts, tc.buys); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// spin burns CPU for d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// The profile tells the load generator's goroutines, and the ones they
// start, from the rest: one goroutine spins as the platform, another
// under the label spins as long through a child of its own, and the
// label's share comes out near two thirds.
func TestLoadShareTellsTheLoadGeneratorApart(t *testing.T) {
	var prof bytes.Buffer
	if err := pprof.StartCPUProfile(&prof); err != nil {
		t.Fatalf("start a CPU profile (this test takes its own; run it without -cpuprofile): %v", err)
	}
	done := make(chan struct{}, 3)
	go func() { spin(300 * time.Millisecond); done <- struct{}{} }()
	asLoadGenerator(context.Background(), func(context.Context) {
		go func() { spin(300 * time.Millisecond); done <- struct{}{} }()
		go func() { spin(300 * time.Millisecond); done <- struct{}{} }()
	})
	for range 3 {
		<-done
	}
	pprof.StopCPUProfile()
	share, err := loadShare(&prof)
	if err != nil {
		t.Fatal(err)
	}
	if share < 0.4 || share > 0.9 {
		t.Errorf("the load generator's share is %.2f, want about 2/3", share)
	}
}

// With Statements the stack's Postgres counts its statements: the hook
// forgets what ran before the replay and lists, after it, what ran during
// it, in every database, the slowest first.
func TestMeasureStatementsListsTheReplaysStatements(t *testing.T) {
	ctx := context.Background()
	stack, err := localstack.Start(ctx, localstack.Config{Databases: []string{"shop"}, NoBroker: true, Statements: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	conn, err := pgx.Connect(ctx, stack.PostgresURL("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT version()`); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	end := measureStatements(ctx, stack.PostgresURL("postgres"), &out)()
	for _, q := range []string{`SELECT pg_sleep(0.05)`, `SELECT now()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	end(nil)
	table := out.String()
	sleep, during := strings.Index(table, "pg_sleep"), strings.Index(table, "now()")
	if sleep < 0 || during < 0 || sleep > during || strings.Contains(table, "version()") || strings.Contains(table, "reset") || !strings.Contains(table, "shop ") {
		t.Fatalf("the table lists, slowest first, the statements run during the replay in database shop only:\n%s", table)
	}
}

func TestStatementTableCutsLongStatements(t *testing.T) {
	long := "SELECT " + strings.Repeat("a, ", 60) + "b FROM t"
	got := statementTable([]statement{{db: "product", calls: 4, total: 10 * time.Millisecond, text: long}})
	want := "  product          4         10     2.50  " + long[:89] + "…\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("got\n%s\nwant it to end with\n%s", got, want)
	}
}
