package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/errcode"
)

// httpStatus is the one table from API error codes to HTTP statuses
// (docs/api.md's error table). Codes missing from it answer 500.
var httpStatus = map[errcode.Code]int{
	errcode.InvalidArgument:   http.StatusBadRequest,
	errcode.Unauthenticated:   http.StatusUnauthorized,
	errcode.Forbidden:         http.StatusForbidden,
	errcode.NotFound:          http.StatusNotFound,
	errcode.SoldOut:           http.StatusConflict,
	errcode.LimitExceeded:     http.StatusConflict,
	errcode.ActivityNotActive: http.StatusConflict,
	errcode.Conflict:          http.StatusConflict,
	errcode.RateLimited:       http.StatusTooManyRequests,
	errcode.Overloaded:        http.StatusTooManyRequests,
	errcode.Unavailable:       http.StatusServiceUnavailable,
	errcode.Internal:          http.StatusInternalServerError,
	errcode.Blocked:           http.StatusForbidden,
	errcode.ChallengeRequired: http.StatusPreconditionRequired,
	errcode.ChallengeInvalid:  http.StatusForbidden,
	errcode.ChallengeExpired:  http.StatusForbidden,
	errcode.ChallengeEarly:    http.StatusTooEarly,
	errcode.ChallengeUsed:     http.StatusConflict,
}

// StatusOf returns the HTTP status of an API error code.
func StatusOf(c errcode.Code) int {
	if s, ok := httpStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// genericMessages answer the codes whose downstream messages may carry
// internals (addresses, driver errors), so callers see only these.
var genericMessages = map[errcode.Code]string{
	errcode.Internal:    "internal error",
	errcode.Unavailable: "service temporarily unavailable, retry later",
}

// Error is an error the gateway answers itself, before or instead of
// calling a downstream service.
type Error struct {
	Code    errcode.Code
	Message string
	// Status overrides the table's status where docs/api.md allows another
	// one (413 for a body that is too large).
	Status int
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// errorf makes an Error with the code and message.
func errorf(c errcode.Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// writeError answers err: an *Error as it is, a downstream gRPC status by
// its errcode, anything else as INTERNAL. Internal and unavailable causes
// from downstream are logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var (
		code       errcode.Code
		msg        string
		st         int
		retryAfter time.Duration
	)
	var ge *Error
	switch {
	case errors.As(err, &ge):
		code, msg, st, retryAfter = ge.Code, ge.Message, ge.Status, ge.RetryAfter
	default:
		code = errcode.Of(err)
		if s, ok := status.FromError(err); ok {
			msg = s.Message()
		}
	}
	if st == 0 {
		st = StatusOf(code)
	}
	// The gateway's own errors carry no internals (a degrade switch says
	// why it refused); only downstream causes are replaced and logged.
	if generic, ok := genericMessages[code]; ok && ge == nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", string(code), "err", err)
		msg = generic
	}
	info := infoOf(r.Context())
	info.code = code
	// A deadline is answered UNAVAILABLE, so the refusals (429, SOLD_OUT)
	// that most errors of a spike are skip the look down err's chain.
	info.outlived = code == errcode.Unavailable &&
		(errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(retryAfter), 10))
	}
	writeJSON(w, st, api.ErrorBody{Error: api.ErrorDetail{Code: string(code), Message: msg}})
}

// retryAfterSeconds rounds d up to whole seconds, at least one, since
// Retry-After counts seconds and zero would invite an immediate retry.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
