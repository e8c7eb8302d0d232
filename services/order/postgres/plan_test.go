package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/services/order/postgres"
)

// Reading orders looks their lines and promotions up in the order_id
// indexes, even on statistics taken while the tables were nearly empty:
// a flash sale fills them faster than autovacuum analyzes them. Written
// `order_id IN (SELECT … LIMIT $2)`, the user's list was planned as a
// scan of every line (a capacity run's audit, 142,121 lines, ran its list
// reads out of their 2 s budget). Each statement is planned as pgx runs
// it first (a custom plan, with its arguments) and as a generic plan.
func TestOrderReadsLookUpTheirRows(t *testing.T) {
	pool := stack.MustPool(t, "orders_plans", 2, postgres.Migrations)
	ctx := context.Background()
	const orders, users = 100_000, 4_000
	for _, sql := range []string{
		`TRUNCATE orders, order_lines, order_promotions CASCADE`,
		fmt.Sprintf(`INSERT INTO orders (order_id, user_id, kind, status, activity_id, total, discount, payable,
			idempotency_key, created_at, expires_at)
			SELECT g, 1 + g %% %d, 'REGULAR', 'PENDING_PAYMENT', NULL, 100, 10, 90, 'k' || g,
				timestamptz '2026-11-11' + g * interval '1 ms', timestamptz '2026-11-11 01:00' + g * interval '1 ms'
			FROM generate_series(1, %d) g`, users, orders),
		fmt.Sprintf(`INSERT INTO order_lines (line_id, order_id, sku_id, quantity, unit_price, amount, discount, payable)
			SELECT g, g, 3, 1, 100, 100, 10, 90 FROM generate_series(1, %d) g`, orders),
		fmt.Sprintf(`INSERT INTO order_promotions (order_id, position, promotion_id, kind, amount)
			SELECT g, 0, 5, 'SKU_DISCOUNT', 10 FROM generate_series(1, %d) g`, orders),
		// Statistics as an early analyze left them: few distinct orders.
		`ALTER TABLE order_lines ALTER COLUMN order_id SET (n_distinct = 50)`,
		`ALTER TABLE order_promotions ALTER COLUMN order_id SET (n_distinct = 50)`,
		`ANALYZE orders, order_lines, order_promotions`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%.60s…: %v", sql, err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	args := map[string]string{"by id": "42", "the user's list": "43, 100", "by key": "43, 'k42'"}
	for name, stmts := range postgres.OrderReadStatements() {
		for i, stmt := range stmts {
			what := []string{"the lines", "the promotions"}[i]
			if _, err := conn.Exec(ctx, "PREPARE read AS "+stmt); err != nil {
				t.Fatalf("%s: prepare: %v", name, err)
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				var plan []struct{ Plan planNode }
				if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
					t.Fatal(err)
				}
				var raw []byte
				if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE read("+args[name]+")").Scan(&raw); err != nil {
					t.Fatalf("%s: explain: %v", name, err)
				}
				if err := json.Unmarshal(raw, &plan); err != nil {
					t.Fatal(err)
				}
				if bad := plan[0].Plan.wholeScans(); len(bad) > 0 {
					t.Errorf("%s, %s: %s are read by %s, not by order id:\n%s", name, mode, what, strings.Join(bad, ", "), raw)
				}
			}
			if _, err := conn.Exec(ctx, "DEALLOCATE read"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	IndexCond string     `json:"Index Cond"`
	Plans     []planNode `json:"Plans"`
}

// wholeScans names the nodes under n that read order_lines or
// order_promotions whole: a sequential scan, or an index walked without a
// condition.
func (n planNode) wholeScans() []string {
	var bad []string
	if n.Relation == "order_lines" || n.Relation == "order_promotions" {
		switch n.NodeType {
		case "Index Scan", "Index Only Scan":
			if n.IndexCond == "" {
				bad = append(bad, n.NodeType+" of "+n.IndexName+" without a condition")
			}
		case "Bitmap Heap Scan":
		default:
			bad = append(bad, n.NodeType+" on "+n.Relation)
		}
	}
	for _, c := range n.Plans {
		bad = append(bad, c.wholeScans()...)
	}
	return bad
}
