package gateway

import "time"

// WithAdmissionWindow returns o with admission limits that may move after
// every window holding samples requests, so a test sees them adapt
// within a few hundred requests.
func WithAdmissionWindow(o Options, window time.Duration, samples uint) Options {
	o.admissionWindow, o.admissionSamples = window, samples
	return o
}

// WithChallengeWait returns o whose challenges all wait exactly wait, so
// a test knows when a buy is too early.
func WithChallengeWait(o Options, wait time.Duration) Options {
	o.challengeWait = func(time.Duration) time.Duration { return wait }
	return o
}

// DegradeAnswers is how many flash-sale answers the degrade controller
// has counted.
func DegradeAnswers(g *Gateway) int64 { return g.degrade.answers.Load() }

// HeldMarks is how many accepted-key marks g holds until Redis takes them.
func HeldMarks(g *Gateway) int { return g.accepted.held.size() }
