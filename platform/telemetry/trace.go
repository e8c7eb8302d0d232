package telemetry

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Tracing is what SetupTracing needs.
type Tracing struct {
	// Service is the resource's service.name (the binary's service:
	// gateway, order, ...). OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override it and add attributes, as the OpenTelemetry specification
	// asks.
	Service string
	// Version is service.version (default: the binary's build version,
	// see BuildVersion).
	Version string
	// OTLPEndpoint is the host:port of a collector spans are exported to
	// over gRPC; empty exports nothing.
	OTLPEndpoint string
	// Exporter, when set, receives every ended span synchronously besides
	// the OTLP export (tests read spans from an in-memory exporter).
	Exporter sdktrace.SpanExporter
}

// SetupTracing installs the global tracer provider and the W3C trace
// context propagator. Every span carries the resource of Resource, so
// Jaeger and the collector tell the services and their replicas apart.
// The sampler is the SDK's, from OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG; unset, it is parentbased_always_on (every
// trace, as the demo and tests want). Without an exporter spans are still
// created, so trace ids flow through logs, gRPC metadata and Kafka
// headers. The returned function flushes and stops the provider.
func SetupTracing(ctx context.Context, t Tracing) (func(context.Context) error, error) {
	res, err := Resource(ctx, t.Service, t.Version)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if t.OTLPEndpoint != "" {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(t.OTLPEndpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if t.Exporter != nil {
		opts = append(opts, sdktrace.WithSyncer(t.Exporter))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// Resource describes this process: service.name, service.version and
// service.instance.id (the host name, which is the pod's or the
// container's, and the process id), the SDK's attributes, and over them
// whatever OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME set.
func Resource(ctx context.Context, service, version string) (*resource.Resource, error) {
	if version == "" {
		version = BuildVersion()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			semconv.ServiceName(service),
			semconv.ServiceVersion(version),
			semconv.ServiceInstanceID(host+"-"+strconv.Itoa(os.Getpid())),
		),
		// Last, so the operator's settings win.
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// BuildVersion is the binary's version: its module version when built
// from a tagged module, else the VCS revision the build recorded, else
// "dev".
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return "dev"
}
