package rpc_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/rpc"
	"github.com/flashsale/flashsale/platform/shadow"
)

// hop is a test service that records whether each call arrived marked
// and, when next is set, makes the same call onwards with the context it
// was given, as a service calling its peers does.
type hop struct {
	testgrpc.UnimplementedTestServiceServer
	next   testgrpc.TestServiceClient
	marked chan bool
}

func (h *hop) EmptyCall(ctx context.Context, in *testgrpc.Empty) (*testgrpc.Empty, error) {
	h.marked <- shadow.Is(ctx)
	if h.next != nil {
		return h.next.EmptyCall(ctx, in)
	}
	return &testgrpc.Empty{}, nil
}

func (h *hop) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, s testgrpc.TestService_StreamingOutputCallServer) error {
	h.marked <- shadow.Is(s.Context())
	return nil
}

// serveHop serves h on a platform server over TCP and returns a client of it.
func serveHop(t *testing.T, h *hop) testgrpc.TestServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), errcode.Table{})
	testgrpc.RegisterTestServiceServer(srv, h)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); <-served })
	cc, err := rpc.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// The mark crosses two gRPC hops on the real wire (caller → A → B, as
// gateway → order → inventory), on unary and streaming calls, and an
// unmarked call stays unmarked all the way: the mark is neither lost nor
// invented.
func TestTheMarkCrossesEveryHop(t *testing.T) {
	b := &hop{marked: make(chan bool, 1)}
	a := &hop{marked: make(chan bool, 1), next: serveHop(t, b)}
	client := serveHop(t, a)

	for _, marked := range []bool{true, false, true} {
		ctx := context.Background()
		if marked {
			ctx = shadow.With(ctx)
		}
		if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Fatal(err)
		}
		if gotA, gotB := <-a.marked, <-b.marked; gotA != marked || gotB != marked {
			t.Fatalf("call marked %v: first hop saw %v, second %v", marked, gotA, gotB)
		}
		s, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err == nil {
			t.Fatal("the stream sent a message")
		}
		if got := <-a.marked; got != marked {
			t.Fatalf("stream marked %v arrived marked %v", marked, got)
		}
	}
}
