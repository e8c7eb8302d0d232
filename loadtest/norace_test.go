//go:build !race

package loadtest_test

// raceSlowdown: without the race detector, the production budgets
// (race_test.go).
const raceSlowdown = 1
