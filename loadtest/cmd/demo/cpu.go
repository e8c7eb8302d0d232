package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// The demo runs the platform and the load generator in one process. The
// load generator's goroutines (the replay and every goroutine it starts,
// its HTTP client's connections among them) carry the profile label
// part=load generator; the platform's goroutines were started before the
// replay, by the platform, and carry none. The CPU profile of the replay
// then tells the two apart, so the figure per buy is the platform's own:
// on other machines the buyers cost the platform nothing.
const (
	partLabel     = "part"
	loadGenerator = "load generator"
)

// asLoadGenerator runs f with the load generator's label.
func asLoadGenerator(ctx context.Context, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(partLabel, loadGenerator), f)
}

// measureReplay returns the session's AroundReplay: it prints the CPU
// time used during the replay by this process, split between the
// platform and the load generator by a CPU profile of the replay, and by
// the stack's Redis and Postgres, which are child processes outside it,
// and what each took per answered buy. With a profile path it also
// writes that profile there.
func measureReplay(profilePath string, stack *localstack.Stack) (func() (end func(*result.Replay)), error) {
	var file *os.File
	if profilePath != "" {
		var err error
		if file, err = os.Create(profilePath); err != nil {
			return nil, err
		}
	}
	return func() (end func(*result.Replay)) {
		var prof bytes.Buffer
		var w io.Writer = &prof
		if file != nil {
			w = io.MultiWriter(&prof, file)
		}
		profErr := pprof.StartCPUProfile(w)
		serversBefore, serversErr := stack.ServerCPU()
		before, start := cpuTime(), time.Now()
		return func(res *result.Replay) {
			used, wall := cpuTime()-before, time.Since(start)
			servers, err := stack.ServerCPU()
			if profErr == nil {
				pprof.StopCPUProfile()
			}
			if file != nil {
				file.Close()
			}
			parts := []cpuPart{{name: "platform process", used: used}}
			share, shareErr := 0.0, profErr
			if profErr == nil {
				share, shareErr = loadShare(&prof)
			}
			if shareErr == nil {
				gen := time.Duration(share * float64(used))
				parts = []cpuPart{{name: "platform process", used: used - gen}, {name: loadGenerator, used: gen, apart: true}}
			}
			if err = errors.Join(serversErr, err); err == nil {
				d := servers.Sub(serversBefore)
				parts = append(parts, cpuPart{name: "redis-server", used: d.Redis}, cpuPart{name: "postgres", used: d.Postgres})
			}
			buys := 0
			if res != nil {
				buys = res.SeckillAnswered()
			}
			fmt.Printf("\n%s\n", cpuLine(wall, parts, buys))
			if shareErr != nil {
				fmt.Printf("The load generator's CPU not told apart from the platform's (cpu profile): %v\n", shareErr)
			}
			if err != nil {
				fmt.Printf("Redis and Postgres CPU not measured: %v\n", err)
			}
		}
	}, nil
}

// loadShare is the share of the profile's CPU samples that carry the load
// generator's label. Work no goroutine is charged for (the garbage
// collector's background workers) counts as the platform's.
func loadShare(prof *bytes.Buffer) (float64, error) {
	p, err := profile.Parse(prof)
	if err != nil {
		return 0, fmt.Errorf("cpu profile: %w", err)
	}
	cpu := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if cpu < 0 {
		return 0, errors.New("cpu profile: no cpu samples")
	}
	var all, gen int64
	for _, s := range p.Sample {
		all += s.Value[cpu]
		if slices.Contains(s.Label[partLabel], loadGenerator) {
			gen += s.Value[cpu]
		}
	}
	if all == 0 {
		return 0, errors.New("cpu profile: empty")
	}
	return float64(gen) / float64(all), nil
}

// cpuPart is the CPU time one part used; a part apart is not the
// platform's (the load generator) and is left out of its sum per buy.
type cpuPart struct {
	name  string
	used  time.Duration
	apart bool
}

// cpuLine says what each part used in wall time and in cores and, when
// buys were answered, per answered buy: the platform's parts summed, the
// load generator's beside them. The replay's setup (signing the buyers
// in, creating the catalog) and its other requests (browsing, checkouts,
// payments) are charged to the buys too, so the figure per buy is an
// upper bound, close for a scenario of buys alone.
func cpuLine(wall time.Duration, parts []cpuPart, buys int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CPU during the replay (%.1f s):", wall.Seconds())
	for i, p := range parts {
		sep, unit := ",", ""
		if i == 0 {
			sep, unit = "", " cores"
		}
		fmt.Fprintf(&b, "%s %s %.1f s (%.2f%s)", sep, p.name, p.used.Seconds(), p.used.Seconds()/wall.Seconds(), unit)
	}
	if buys == 0 {
		return b.String()
	}
	perBuy := func(used time.Duration) string {
		return fmt.Sprintf("%.0f µs", float64(used.Microseconds())/float64(buys))
	}
	var total time.Duration
	var each, apart []string
	for _, p := range parts {
		if p.apart {
			apart = append(apart, p.name+" "+perBuy(p.used))
			continue
		}
		total += p.used
		each = append(each, perBuy(p.used))
	}
	fmt.Fprintf(&b, "; per answered buy %s", strings.Join(each, " + "))
	if len(each) > 1 {
		fmt.Fprintf(&b, " = %s", perBuy(total))
	}
	if len(apart) > 0 {
		fmt.Fprintf(&b, " (and the %s)", strings.Join(apart, ", "))
	}
	return b.String()
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
