package gateway

import (
	"testing"
	"time"
)

// TestAutomaticDegradeMovesWithHysteresis drives the controller second
// by second: three seconds under pressure raise the level one step (up to
// survive, never to close), ten calm seconds lower it one step, a second
// in between resets both counts, too few requests are no signal, an open
// breaker is pressure on its own, and a level set by hand is a floor.
func TestAutomaticDegradeMovesWithHysteresis(t *testing.T) {
	open := 0
	d := &degrader{seckill: &admission{}, breakersOpen: func() int { return open }}
	d.automatic.Store(true)
	second := func(admitted, refused int64) {
		d.seckill.admitted.Add(admitted)
		d.seckill.refused.Add(refused)
		d.tick()
	}
	want := func(step string, l Level) {
		t.Helper()
		if got := d.level(); got != l {
			t.Fatalf("%s: level %s, want %s", step, got, l)
		}
	}
	second(100, 100)
	second(100, 100)
	want("two seconds at half refused", LevelNormal)
	second(100, 100)
	want("three seconds at half refused", LevelProtect)
	second(40, 60)
	second(50, 50)
	second(100, 30) // neither pressure nor calm: both counts start again
	second(50, 50)
	second(50, 50)
	want("a mixed second in between", LevelProtect)
	second(50, 50)
	want("three more seconds under pressure", LevelSurvive)
	for range 6 {
		second(10, 1000)
	}
	want("the controller's ceiling", LevelSurvive)
	second(10, 80) // 90 requests: too few to judge, and not calm
	for range 9 {
		second(1000, 10)
	}
	want("nine calm seconds", LevelSurvive)
	second(1000, 10)
	want("ten calm seconds", LevelProtect)
	open = 1
	for range 3 {
		second(0, 0)
	}
	want("a breaker open for three seconds", LevelSurvive)
	open = 0
	d.manual.Store(int32(LevelClose))
	want("set by hand", LevelClose)
	d.manual.Store(int32(LevelNormal))
	for range 20 {
		second(0, 0)
	}
	want("twenty quiet seconds", LevelNormal)

	// Switched off, the controller leaves the level at normal whatever
	// it sees, and drops what it had raised.
	for range 3 {
		second(0, 1000)
	}
	want("pressure with the controller on", LevelProtect)
	d.automatic.Store(false)
	for range 6 {
		second(0, 1000)
	}
	want("pressure with the controller off", LevelNormal)
}

// TestAutomaticDegradeFollowsTheP99Budget: seconds whose flash-sale
// p99 is over budget (more than one answer in a hundred slower than it)
// are pressure, with nothing refused and no breaker open; seconds within
// budget are calm again.
func TestAutomaticDegradeFollowsTheP99Budget(t *testing.T) {
	d := &degrader{seckill: &admission{}, budget: 100 * time.Millisecond}
	d.automatic.Store(true)
	second := func(fast, slow int) {
		for range fast {
			d.observe(10 * time.Millisecond)
		}
		for range slow {
			d.observe(300 * time.Millisecond)
		}
		d.tick()
	}
	for range 3 {
		second(990, 10) // p99 exactly at the budget's edge: 1 % slow
	}
	if got := d.level(); got != LevelNormal {
		t.Fatalf("one answer in a hundred over budget: level %s, want normal", got)
	}
	for range 3 {
		second(980, 20) // p99 over budget
	}
	if got := d.level(); got != LevelProtect {
		t.Fatalf("three seconds over the p99 budget: level %s, want protect", got)
	}
	for range 3 {
		second(30, 30) // too few answers to judge
	}
	if got := d.level(); got != LevelProtect {
		t.Fatalf("seconds of too few answers: level %s, want protect", got)
	}
	for range 10 {
		second(1000, 0)
	}
	if got := d.level(); got != LevelNormal {
		t.Fatalf("ten seconds within budget: level %s, want normal", got)
	}
}

func TestParseLevel(t *testing.T) {
	for i, n := range []string{"normal", "Protect", " survive ", "CLOSE"} {
		if l, err := ParseLevel(n); err != nil || l != Level(i) {
			t.Errorf("ParseLevel(%q) = %v, %v; want %s", n, l, err, Level(i))
		}
	}
	if _, err := ParseLevel("panic"); err == nil {
		t.Error("ParseLevel(panic) succeeded")
	}
}
