//go:build race

package loadtest_test

// raceSlowdown is how many times the production budgets this package's
// platform gives a call: the race detector makes the code it instruments
// several times slower (the Go documentation says 2–20× CPU), so a
// flash sale's opening herd that the platform answers within its 2 s
// budget built normally can outlive it built with -race on a CI machine
// that runs another package's tests beside this one. The audits' checks
// that read a late answer as a failure (5xx only under a fault: a call
// that outlives the gateway's budget is a 503) then test what they are
// for, the faults' handling, not the instrumented build's speed; `make
// demo`, built normally, keeps the production budgets.
const raceSlowdown = 4
