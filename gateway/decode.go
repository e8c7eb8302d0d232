package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/idempotency"
)

// decodeJSON reads exactly one JSON object into v, refusing unknown fields,
// trailing data and bodies over the size limit the route set with
// http.MaxBytesReader.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// A second value, or garbage after the first, makes the body
	// ambiguous; only the end of the body (or the size limit) may follow.
	err := dec.Decode(&struct{}{})
	if errors.Is(err, io.EOF) {
		return nil
	}
	if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
		return decodeError(err)
	}
	return errorf(errcode.InvalidArgument, "request body must hold exactly one JSON value")
}

// decodeOptionalJSON is decodeJSON for a body that may be left out: an
// empty body (no Content-Length, Content-Length 0 or a chunked body of
// no bytes) leaves v as it is.
func decodeOptionalJSON(r *http.Request, v any) error {
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{body, r.Body}
	return decodeJSON(r, v)
}

// decodeError explains a decoding failure without echoing the body.
func decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &Error{Code: errcode.InvalidArgument, Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)}
	case errors.Is(err, io.EOF):
		return errorf(errcode.InvalidArgument, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(errcode.InvalidArgument, "request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return errorf(errcode.InvalidArgument, fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.As(err, &typeErr):
		return errorf(errcode.InvalidArgument, fmt.Sprintf("field %q has the wrong type (want %s)", typeErr.Field, typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: "):
		// DisallowUnknownFields reports `json: unknown field "x"`; the
		// decoder's own wording names the field and nothing else.
		return errorf(errcode.InvalidArgument, err.Error())
	default:
		// The body could not be read (the client stopped sending, the
		// server's read timeout): the error names the connection's
		// addresses, the gateway's own among them, which are no
		// client's business.
		return errorf(errcode.InvalidArgument, "request body could not be read")
	}
}

// maxIDDigits is the length of the largest int64, so longer ids cannot
// parse.
const maxIDDigits = 19

// parseID parses an id of the API: a string of decimal digits naming a
// positive int64.
func parseID(field, s string) (int64, error) {
	bad := errorf(errcode.InvalidArgument, field+" must be a string of decimal digits")
	if s == "" || len(s) > maxIDDigits {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, bad
	}
	return id, nil
}

// formatID is the API form of an id.
func formatID(id int64) string { return strconv.FormatInt(id, 10) }

// fields checks the fields of one request body, remembering the first
// problem, so a handler validates everything in a straight line and
// answers once.
type fields struct{ err error }

func (f *fields) fail(field, msg string) {
	if f.err == nil {
		f.err = errorf(errcode.InvalidArgument, field+" "+msg)
	}
}

// id returns the required id field.
func (f *fields) id(field string, v *string) int64 {
	if v == nil {
		f.fail(field, "is required")
		return 0
	}
	id, err := parseID(field, *v)
	if err != nil && f.err == nil {
		f.err = err
	}
	return id
}

// int returns the required integer field, which must lie in [lo, hi].
func (f *fields) int(field string, v *int64, lo, hi int64) int64 {
	if v == nil {
		f.fail(field, "is required")
		return 0
	}
	if *v < lo || *v > hi {
		f.fail(field, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
	return *v
}

// text returns the required string field, 1 to maxLen characters long
// (runes: a limit in bytes would refuse a Chinese title a third as long as
// the product service takes).
func (f *fields) text(field string, v *string, maxLen int) string {
	if v == nil || *v == "" {
		f.fail(field, "is required")
		return ""
	}
	switch {
	case utf8.RuneCountInString(*v) > maxLen:
		f.fail(field, fmt.Sprintf("must be at most %d characters", maxLen))
	case strings.ContainsFunc(*v, unicode.IsControl):
		f.fail(field, "must not contain control characters")
	}
	return *v
}

// Times must lie in these years (UTC), so that every stored time can be
// written back as RFC 3339 and as a protobuf Timestamp.
const minYear, maxYear = 2000, 9999

// time returns the required RFC 3339 time field.
func (f *fields) time(field string, v *string) time.Time {
	if v == nil {
		f.fail(field, "is required")
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		f.fail(field, "must be an RFC 3339 time")
		return t
	}
	if y := t.UTC().Year(); y < minYear || y > maxYear {
		f.fail(field, fmt.Sprintf("must be between the years %d and %d (UTC)", minYear, maxYear))
	}
	return t
}

// idempotencyKey returns the request's required Idempotency-Key header,
// checked by the platform's rule (docs/api.md, "Idempotency keys"), so
// that no key reaches a service that would refuse or fail on it.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return "", errorf(errcode.InvalidArgument, "header Idempotency-Key is required")
	}
	if err := idempotency.CheckKey(key); err != nil {
		return "", errorf(errcode.InvalidArgument, "header Idempotency-Key: "+err.Error())
	}
	return key, nil
}
