package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, local.StackConfig(nil), func(s *localstack.Stack) { stack = s })
}

// mustUp runs the platform on the stack until the test ends.
func mustUp(t *testing.T) *local.Platform {
	t.Helper()
	return mustUpWith(t, local.Options{})
}

// mustUpWith is mustUp with opts.
func mustUpWith(t *testing.T, opts local.Options) *local.Platform {
	t.Helper()
	p, err := local.Up(context.Background(), stack, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// client talks JSON to the gateway.
type client struct {
	tb   testing.TB
	base string
}

// MustDo sends body to path with the token and decodes the answer into
// out, failing the test unless the status is want.
func (c client) MustDo(method, path, token string, header map[string]string, body string, want int, out any) {
	c.tb.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	if err != nil {
		c.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.tb.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.tb.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
}

func (c client) MustToken(user, role string) string {
	c.tb.Helper()
	var tok struct{ Token string }
	c.MustDo(http.MethodPost, "/api/v1/dev/token", "", nil, fmt.Sprintf(`{"user_id":%q,"role":%q}`, user, role), http.StatusOK, &tok)
	return tok.Token
}

// One flash-sale buy makes one trace: the gateway's HTTP span, its
// placement in order (which travels in a batch of buys, carrying the
// buy's trace context) and order's calls onward, and, across Kafka, the
// consumer's span for the message in the batch that stored it.
func TestOneTraceFromGatewayThroughKafkaToTheConsumer(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	p := mustUp(t)
	c := client{tb: t, base: p.GatewayURL}
	admin, buyer := c.MustToken("1", "admin"), c.MustToken("42", "user")
	act := mustSale(t, c, admin, 5)
	c.MustDo(http.MethodPost, "/api/v1/seckill/orders", buyer, map[string]string{"Idempotency-Key": "trace-1"},
		fmt.Sprintf(`{"activity_id":%q,"quantity":1}`, act), http.StatusAccepted, nil)

	// The gateway's span of the buy names the trace.
	var root trace.TraceID
	deadline := time.Now().Add(60 * time.Second)
	var consumed bool
	for !consumed {
		if time.Now().After(deadline) {
			t.Fatalf("no consumer span in the buy's trace; spans: %s", names(exp.GetSpans()))
		}
		time.Sleep(50 * time.Millisecond)
		for _, s := range exp.GetSpans() {
			if s.Name == "POST /api/v1/seckill/orders" && s.SpanKind == trace.SpanKindServer {
				root = s.SpanContext.TraceID()
			}
		}
		for _, s := range exp.GetSpans() {
			if root.IsValid() && s.SpanContext.TraceID() == root && s.Name == "orders.placed process" {
				consumed = true
			}
		}
	}
	var inTrace []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == root {
			inTrace = append(inTrace, s)
		}
	}
	want := []struct {
		name string
		kind trace.SpanKind
	}{
		{"POST /api/v1/seckill/orders", trace.SpanKindServer},
		{"order place", trace.SpanKindClient},
		{"place seckill order", trace.SpanKindServer},
		{"inventory reserve", trace.SpanKindClient},
		{"orders.placed process", trace.SpanKindConsumer},
	}
	for _, w := range want {
		found := false
		for _, s := range inTrace {
			found = found || (s.Name == w.name && s.SpanKind == w.kind)
		}
		if !found {
			t.Errorf("the trace lacks %s span %q; it has: %s", w.kind, w.name, names(inTrace))
		}
	}
	// Placements and reservations travel in batches that serve many
	// buys: each batch's span, in a trace of its own, links to the buy's
	// span of the hop, and the server span of the batch call hangs under
	// it; order's span of the buy's placement hangs under the gateway's
	// span of it.
	spanOf := func(name string) (sc trace.SpanContext) {
		for _, s := range inTrace {
			if s.Name == name {
				sc = s.SpanContext
			}
		}
		return sc
	}
	for _, hop := range []struct{ member, server string }{
		{"order place", "flashsale.order.v1.OrderService/PlaceSeckillOrderBatch"},
		{"inventory reserve", "flashsale.inventory.v1.InventoryService/ReserveBatch"},
	} {
		member := spanOf(hop.member)
		var batch trace.SpanContext
		for _, s := range exp.GetSpans() {
			for _, l := range s.Links {
				if s.Name == hop.member+" batch" && member.IsValid() && l.SpanContext.SpanID() == member.SpanID() {
					batch = s.SpanContext
				}
			}
		}
		served := false
		for _, s := range exp.GetSpans() {
			served = served || (batch.IsValid() && s.SpanContext.TraceID() == batch.TraceID() &&
				s.Name == hop.server && s.SpanKind == trace.SpanKindServer)
		}
		if !served {
			t.Errorf("no %s server span in a batch trace linked to the buy's %q span; spans: %s", hop.server, hop.member, names(exp.GetSpans()))
		}
	}
	for _, s := range inTrace {
		if s.Name == "place seckill order" && s.Parent.SpanID() != spanOf("order place").SpanID() {
			t.Errorf("order's placement span parent = %v, want the gateway's %q span", s.Parent, "order place")
		}
	}
	// The consumer's span hangs under order's server span (through the
	// Kafka headers), and links to the batch span in a trace of its own.
	for _, s := range inTrace {
		if s.Name != "orders.placed process" {
			continue
		}
		if !s.Parent.IsValid() || s.Parent.TraceID() != root {
			t.Errorf("consumer span parent = %v, want a span of the buy's trace", s.Parent)
		}
		if len(s.Links) != 1 {
			t.Errorf("consumer span has %d links, want 1 (its batch)", len(s.Links))
		}
	}
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name+"("+s.SpanKind.String()+")")
	}
	return strings.Join(out, ", ")
}
