// Package errcode is the platform's error vocabulary across gRPC: the codes
// of the public API's error table, and the one table per service that maps
// its domain errors to them. The gateway turns a code into an HTTP status.
package errcode

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code is an error code of the public API (docs/api.md's error table).
type Code string

// The codes of docs/api.md.
const (
	InvalidArgument   Code = "INVALID_ARGUMENT"
	Unauthenticated   Code = "UNAUTHENTICATED"
	Forbidden         Code = "FORBIDDEN"
	NotFound          Code = "NOT_FOUND"
	SoldOut           Code = "SOLD_OUT"
	LimitExceeded     Code = "LIMIT_EXCEEDED"
	ActivityNotActive Code = "ACTIVITY_NOT_ACTIVE"
	Conflict          Code = "CONFLICT"
	RateLimited       Code = "RATE_LIMITED"
	Overloaded        Code = "OVERLOADED"
	Unavailable       Code = "UNAVAILABLE"
	Internal          Code = "INTERNAL"
	// The flash-sale entry's bot wall (the gateway answers them itself):
	// a caller on the blocklist, and a buy whose challenge token is
	// missing, invalid, expired, sent before its wait was over, or used
	// by another request already.
	Blocked           Code = "BLOCKED"
	ChallengeRequired Code = "CHALLENGE_REQUIRED"
	ChallengeInvalid  Code = "CHALLENGE_INVALID"
	ChallengeExpired  Code = "CHALLENGE_EXPIRED"
	ChallengeEarly    Code = "CHALLENGE_EARLY"
	ChallengeUsed     Code = "CHALLENGE_USED"
)

// domain names the ErrorInfo entries this package writes.
const domain = "flashsale"

var grpcCodes = map[Code]codes.Code{
	InvalidArgument:   codes.InvalidArgument,
	Unauthenticated:   codes.Unauthenticated,
	Forbidden:         codes.PermissionDenied,
	NotFound:          codes.NotFound,
	SoldOut:           codes.FailedPrecondition,
	LimitExceeded:     codes.FailedPrecondition,
	ActivityNotActive: codes.FailedPrecondition,
	Conflict:          codes.FailedPrecondition,
	RateLimited:       codes.ResourceExhausted,
	Overloaded:        codes.ResourceExhausted,
	Unavailable:       codes.Unavailable,
	Internal:          codes.Internal,
	Blocked:           codes.PermissionDenied,
	ChallengeRequired: codes.FailedPrecondition,
	ChallengeInvalid:  codes.PermissionDenied,
	ChallengeExpired:  codes.FailedPrecondition,
	ChallengeEarly:    codes.FailedPrecondition,
	ChallengeUsed:     codes.FailedPrecondition,
}

// fromGRPC is the code of a status that carries no ErrorInfo (errors made
// by gRPC itself, such as deadlines and unreachable servers).
var fromGRPC = map[codes.Code]Code{
	codes.InvalidArgument:    InvalidArgument,
	codes.Unauthenticated:    Unauthenticated,
	codes.PermissionDenied:   Forbidden,
	codes.NotFound:           NotFound,
	codes.FailedPrecondition: Conflict,
	codes.AlreadyExists:      Conflict,
	codes.Aborted:            Conflict,
	codes.ResourceExhausted:  RateLimited,
	codes.Unavailable:        Unavailable,
	codes.DeadlineExceeded:   Unavailable,
	codes.Canceled:           Unavailable,
}

// Rule maps one domain error (matched with errors.Is) to a code.
type Rule struct {
	Err  error
	Code Code
}

// Table is a service's mapping of domain errors to codes. The first
// matching rule wins.
type Table []Rule

// Status converts err to a gRPC status error carrying the code as
// ErrorInfo. Errors no rule matches become INTERNAL with a generic message,
// so internals never leak to callers; context errors become UNAVAILABLE.
func (t Table) Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, r := range t {
		if errors.Is(err, r.Err) {
			return New(r.Code, err.Error())
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return New(Unavailable, "deadline exceeded or canceled")
	}
	if Unreachable(err) {
		return New(Unavailable, "a dependency cannot be reached")
	}
	return New(Internal, "internal error")
}

// Unreachable reports a failure to reach a dependency over the network:
// a connection refused, reset, closed or timed out (Postgres restarting,
// Redis failing over, a proxy cut), or a database that answers only to
// say it cannot serve now (SQLSTATE class 08, connection exception, and
// 57P, shutting down or starting up). The call may well succeed later,
// so callers hear UNAVAILABLE and may retry, never INTERNAL.
func Unreachable(err error) bool {
	var ne net.Error
	var db interface{ SQLState() string }
	if errors.As(err, &db) {
		if st := db.SQLState(); strings.HasPrefix(st, "08") || strings.HasPrefix(st, "57P") {
			return true
		}
	}
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// Outage reports an error that says the source could not answer now
// rather than answering: UNAVAILABLE from another service (a breaker
// open, a deadline), a deadline of our own, or an unreachable
// dependency. Not found, invalid and the like are answers. A cache may
// ride out an outage with what it last had (platform/cache.Stale).
func Outage(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || Unreachable(err) {
		return true
	}
	if _, ok := status.FromError(err); ok {
		return Of(err) == Unavailable
	}
	return false
}

// Domain converts a status error received from another service back into
// this service's domain error with the same code, wrapped with the remote
// message. Errors without a matching rule are returned unchanged.
func (t Table) Domain(err error) error {
	if err == nil {
		return nil
	}
	c := Of(err)
	for _, r := range t {
		if r.Code == c {
			return &remoteError{domain: r.Err, msg: status.Convert(err).Message()}
		}
	}
	return err
}

type remoteError struct {
	domain error
	msg    string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.domain }

// New makes a status error with the code and message.
func New(c Code, msg string) error {
	gc, ok := grpcCodes[c]
	if !ok {
		gc = codes.Unknown
	}
	st := status.New(gc, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(c), Domain: domain}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// Answered reports whether err is an answer a platform service gave
// itself, with a code of the error table (New, Table.Status), rather than
// a failure to get an answer (a refused connection, a transport error, a
// deadline that expired on the caller's side).
func Answered(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	_, ok = reason(st)
	return ok
}

// Of returns the code of a status error: its ErrorInfo reason when it has
// one, else a code derived from the gRPC code. Non-status errors are
// INTERNAL.
func Of(err error) Code {
	st, ok := status.FromError(err)
	if !ok {
		return Internal
	}
	if c, ok := reason(st); ok {
		return c
	}
	if c, ok := fromGRPC[st.Code()]; ok {
		return c
	}
	return Internal
}

// reason returns the code a platform service put in st's ErrorInfo.
func reason(st *status.Status) (Code, bool) {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain {
			return Code(info.GetReason()), true
		}
	}
	return "", false
}

// Split takes a status error apart for a batch member's answer (a batch
// call answers each member with what its own call would have failed
// with): its gRPC code, its API code (empty when it carries no
// ErrorInfo) and its message. Join puts it back together.
func Split(err error) (codes.Code, Code, string) {
	st := status.Convert(err)
	c, _ := reason(st)
	return st.Code(), c, st.Message()
}

// Join makes the status error Split took apart: one with the API code
// when it had one (New), else a plain status of the gRPC code, so that
// Of and Answered say of it what they said of the original.
func Join(gc codes.Code, c Code, msg string) error {
	if c != "" {
		return New(c, msg)
	}
	return status.Error(gc, msg)
}
