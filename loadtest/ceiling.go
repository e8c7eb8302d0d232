package loadtest

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/loadtest/result"
	invredis "github.com/flashsale/flashsale/services/inventory/redis"
)

// ceilingActivity is the activity id the ceiling reserves from; its stock
// and limit never run out within a run.
const ceilingActivity = 1 << 40

// MeasureCeiling runs the Reserve script with redis-benchmark (EVALSHA,
// as go-redis runs it) from clients connections for about d on the Redis
// at addr, and reads its CSV report.
func MeasureCeiling(ctx context.Context, addr string, d time.Duration, clients int) (*result.Ceiling, error) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return nil, fmt.Errorf("redis-benchmark not found: install it with `make deps` or `apt-get install redis-tools`")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	if _, err := invredis.NewStore(rdb).Preheat(ctx, ceilingActivity, 1<<50, 1<<50, 1); err != nil {
		return nil, fmt.Errorf("ceiling: preheat: %w", err)
	}
	sha, err := rdb.ScriptLoad(ctx, invredis.ReserveScript).Result()
	if err != nil {
		return nil, fmt.Errorf("ceiling: load script: %w", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ceiling: redis address %q: %w", addr, err)
	}
	keys := invredis.ReserveKeys(ceilingActivity, 0)
	keys[4] = strings.TrimSuffix(keys[4], "0") + "__rand_int__"
	keys[6] = strings.TrimSuffix(keys[6], "0") + "__rand_int__"
	deadline := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	args := func(n int) []string {
		a := []string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(n), "-r", "1000000000", "--csv",
			"EVALSHA", sha, strconv.Itoa(len(keys))}
		a = append(a, keys...)
		return append(a, "__rand_int__", "1", "__rand_int__", "__rand_int__", deadline)
	}
	// Calibrate the request count to the duration with a short run.
	n := 20000
	probe, err := runRedisBenchmark(ctx, args(n))
	if err != nil {
		return nil, err
	}
	rps, err := runRedisBenchmark(ctx, args(max(int(probe*d.Seconds()), n)))
	if err != nil {
		return nil, err
	}
	return &result.Ceiling{Name: "redis-benchmark EVALSHA reserve.lua", PerSec: rps}, nil
}

func runRedisBenchmark(ctx context.Context, args []string) (float64, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w: %s", err, errb.String())
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(recs) < 2 || len(recs[1]) < 2 {
		return 0, fmt.Errorf("redis-benchmark: unexpected output %q", out.String())
	}
	return strconv.ParseFloat(recs[1][1], 64)
}
