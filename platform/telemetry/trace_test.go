package telemetry_test

import (
	"context"
	"os"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// MustSpans sets up tracing for service with an in-memory exporter,
// ends one span and returns what was exported.
func MustSpans(t *testing.T, service string) tracetest.SpanStubs {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	shutdown, err := telemetry.SetupTracing(context.Background(), telemetry.Tracing{Service: service, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "op")
	span.End()
	spans := exp.GetSpans() // shutting the exporter down empties it
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return spans
}

// unsetenv unsets the variables for the test (restored after it).
func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func attr(spans tracetest.SpanStubs, key attribute.Key) string {
	v, _ := spans[0].Resource.Set().Value(key)
	return v.Emit()
}

// Spans carry the service's name, a version and an instance id, and the
// sampler samples every trace when OTEL_TRACES_SAMPLER is unset.
func TestSpansCarryTheService(t *testing.T) {
	unsetenv(t, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
	spans := MustSpans(t, "order")
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1 (sampled by default)", len(spans))
	}
	if got := attr(spans, semconv.ServiceNameKey); got != "order" {
		t.Errorf("service.name %q, want order", got)
	}
	for _, k := range []attribute.Key{semconv.ServiceVersionKey, semconv.ServiceInstanceIDKey} {
		if attr(spans, k) == "" {
			t.Errorf("no %s", k)
		}
	}
}

// The operator's OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over
// and add to what the code sets.
func TestResourceFromEnvironment(t *testing.T) {
	unsetenv(t, "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,service.version=1.2.3")
	t.Setenv("OTEL_SERVICE_NAME", "order-canary")
	spans := MustSpans(t, "order")
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	for k, want := range map[attribute.Key]string{
		semconv.ServiceNameKey:        "order-canary",
		semconv.ServiceVersionKey:     "1.2.3",
		"deployment.environment.name": "staging",
	} {
		if got := attr(spans, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// OTEL_TRACES_SAMPLER is respected: always_off exports nothing, and a
// ratio of 0 samples no root span.
func TestSamplerFromEnvironment(t *testing.T) {
	unsetenv(t, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
	for _, s := range []struct{ sampler, arg string }{{"always_off", ""}, {"parentbased_traceidratio", "0"}} {
		t.Setenv("OTEL_TRACES_SAMPLER", s.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", s.arg)
		if spans := MustSpans(t, "gateway"); len(spans) != 0 {
			t.Errorf("OTEL_TRACES_SAMPLER=%s OTEL_TRACES_SAMPLER_ARG=%s: %d spans exported, want none", s.sampler, s.arg, len(spans))
		}
	}
}
