package gateway

import "time"

// WithAdmissionWindow returns o with admission limits that may move after
// every window holding samples requests, so a test sees them adapt
// within a few hundred requests.
func WithAdmissionWindow(o Options, window time.Duration, samples uint) Options {
	o.admissionWindow, o.admissionSamples = window, samples
	return o
}
