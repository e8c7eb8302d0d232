package errcode_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/platform/errcode"
)

var (
	errSoldOut = errors.New("sold out")
	errSecret  = errors.New("pq: password authentication failed for user admin")
)

var table = errcode.Table{{Err: errSoldOut, Code: errcode.SoldOut}}

func TestStatusRoundTrip(t *testing.T) {
	st := table.Status(fmt.Errorf("reserve activity 9: %w", errSoldOut))
	if got := errcode.Of(st); got != errcode.SoldOut {
		t.Fatalf("Of = %s, want SOLD_OUT", got)
	}
	if got := status.Code(st); got != codes.FailedPrecondition {
		t.Fatalf("grpc code = %s", got)
	}
	back := table.Domain(st)
	if !errors.Is(back, errSoldOut) {
		t.Fatalf("Domain(%v) does not match errSoldOut", back)
	}
	if !strings.Contains(back.Error(), "activity 9") {
		t.Fatalf("remote message lost: %q", back)
	}
}

func TestUnknownErrorsDoNotLeak(t *testing.T) {
	st := table.Status(errSecret)
	if got := errcode.Of(st); got != errcode.Internal {
		t.Fatalf("Of = %s, want INTERNAL", got)
	}
	if strings.Contains(st.Error(), "password") {
		t.Fatalf("internal detail leaked: %v", st)
	}
}

func TestPlainGRPCErrors(t *testing.T) {
	tests := []struct {
		err  error
		want errcode.Code
	}{
		{status.Error(codes.Unavailable, "connection refused"), errcode.Unavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), errcode.Unavailable},
		{status.Error(codes.NotFound, "x"), errcode.NotFound},
		{status.Error(codes.DataLoss, "x"), errcode.Internal},
		{table.Status(context.DeadlineExceeded), errcode.Unavailable},
		{errors.New("not a status"), errcode.Internal},
	}
	for _, tt := range tests {
		if got := errcode.Of(tt.err); got != tt.want {
			t.Errorf("Of(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

// A dependency that cannot be reached is UNAVAILABLE to the caller, who
// may retry, never INTERNAL: a refused, reset or closed connection, a
// dial that timed out, an answer cut short.
func TestUnreachableDependenciesAreUnavailable(t *testing.T) {
	_, dialErr := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	for _, err := range []error{
		dialErr,
		fmt.Errorf("query: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}),
		fmt.Errorf("pool: %w", net.ErrClosed),
		fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF),
		fmt.Errorf("query: %w", sqlError("57P03")), // the database system is starting up
		fmt.Errorf("query: %w", sqlError("57P01")), // terminating connection due to administrator command
		fmt.Errorf("query: %w", sqlError("08006")), // connection failure
	} {
		if got := errcode.Of(errcode.Table{}.Status(err)); got != errcode.Unavailable {
			t.Errorf("Status(%v) = %s, want UNAVAILABLE", err, got)
		}
	}
	for _, err := range []error{errors.New("nil map"), sqlError("23505"), sqlError("42P01")} {
		if got := errcode.Of(errcode.Table{}.Status(err)); got != errcode.Internal {
			t.Errorf("Status(%v) = %s, want INTERNAL", err, got)
		}
	}
}

// sqlError is a database error with a SQLSTATE, as pgconn.PgError is.
type sqlError string

func (e sqlError) Error() string    { return "SQLSTATE " + string(e) }
func (e sqlError) SQLState() string { return string(e) }

// An outage is an error that says the source could not answer now; an
// answer about the request (not found, invalid, conflict) is not one.
func TestOutageTellsFailuresToAnswerFromAnswers(t *testing.T) {
	_, dialErr := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	for _, err := range []error{
		dialErr,
		fmt.Errorf("load: %w", context.DeadlineExceeded),
		status.Error(codes.Unavailable, "product: circuit breaker is open"),
		status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
		errcode.New(errcode.Unavailable, "a dependency cannot be reached"),
		sqlError("57P03"),
	} {
		if !errcode.Outage(err) {
			t.Errorf("Outage(%v) = false, want true", err)
		}
	}
	for _, err := range []error{
		errcode.New(errcode.NotFound, "activity 7 not found"),
		errcode.New(errcode.InvalidArgument, "bad id"),
		status.Error(codes.Internal, "boom"),
		errors.New("not found"),
		sqlError("23505"),
	} {
		if errcode.Outage(err) {
			t.Errorf("Outage(%v) = true, want false", err)
		}
	}
}

// A status taken apart for a batch answer and put back together says the
// same code, message and answered-ness as the original, with or without
// an API code.
func TestSplitAndJoinKeepWhatAStatusSays(t *testing.T) {
	for _, err := range []error{
		errcode.New(errcode.SoldOut, "sold out"),
		errcode.New(errcode.Unavailable, "fenced"),
		status.Error(codes.DeadlineExceeded, "deadline exceeded"),
		status.Error(codes.FailedPrecondition, "plain"),
	} {
		got := errcode.Join(errcode.Split(err))
		if errcode.Of(got) != errcode.Of(err) || errcode.Answered(got) != errcode.Answered(err) || status.Code(got) != status.Code(err) ||
			status.Convert(got).Message() != status.Convert(err).Message() {
			t.Errorf("%v came back as %v (code %s/%s, answered %v/%v)", err, got, errcode.Of(got), errcode.Of(err), errcode.Answered(got), errcode.Answered(err))
		}
	}
}
