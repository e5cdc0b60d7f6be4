package validation

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// DefaultLimit is the body limit used when ReadBody is given none: 64 KiB, far above the
// largest valid update (six short strings) and small enough to keep a flood cheap.
const DefaultLimit int64 = 64 << 10

// ReadBody enforces the content type (JSON only: application/json with optional
// charset=utf-8, else 415), Content-Encoding (identity or gzip, else 415), and the size limit
// both on the wire and after gzip decoding (413), returning the raw bytes. A limit of zero or
// less means DefaultLimit. Failures are *Error; an error reading body itself (say, the caller
// went away) is returned wrapped as it is.
func ReadBody(h http.Header, body io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if err := checkContentType(h.Values("Content-Type")); err != nil {
		return nil, err
	}
	gzipped, err := checkContentEncoding(h.Values("Content-Encoding"))
	if err != nil {
		return nil, err
	}

	// Refuse early when the caller announces an oversized body, without reading it.
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n > limit {
		return nil, tooLarge("the body", limit)
	}

	raw, err := readAtMost(body, limit)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, tooLarge("the body", limit)
	}
	if !gzipped || len(raw) == 0 {
		return raw, nil
	}
	return gunzip(raw, limit)
}

func checkContentType(values []string) error {
	if len(values) != 1 {
		return newError(UnsupportedMediaType,
			"send exactly one Content-Type header: application/json")
	}
	mediaType, params, err := mime.ParseMediaType(values[0])
	if err != nil || mediaType != "application/json" {
		return newError(UnsupportedMediaType, fmt.Sprintf(
			"content type %q is not accepted; send application/json", values[0]))
	}
	for name, value := range params {
		allowed, known := contentTypeParams[name]
		if !known || !slices.ContainsFunc(allowed, func(a string) bool {
			return strings.EqualFold(a, value)
		}) {
			return newError(UnsupportedMediaType, fmt.Sprintf(
				"content type parameter %s=%q is not accepted; only charset=utf-8 and "+
					"the OData format parameters (odata.metadata, odata.streaming, "+
					"IEEE754Compatible) are", name, value))
		}
	}
	return nil
}

// contentTypeParams are the media type parameters a body may carry, by lower-case name (as
// mime.ParseMediaType gives them), with their accepted values. Besides the charset, OData
// clients may state the format parameters of OData JSON 4.01, section 3; Graph accepts them,
// and none changes how a body of strings reads.
var contentTypeParams = map[string][]string{
	"charset":           {"utf-8"},
	"odata.metadata":    {"minimal", "full", "none"},
	"odata.streaming":   {"true", "false"},
	"ieee754compatible": {"true", "false"},
}

// checkContentEncoding reports whether the body is gzip-encoded. Several codings stacked
// (gzip, gzip) are refused: one decoding pass is all the limit check accounts for.
func checkContentEncoding(values []string) (gzipped bool, err error) {
	var codings []string
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, nil
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, nil
	default:
		return false, newError(UnsupportedMediaType, fmt.Sprintf(
			"content encoding %q is not accepted; send identity or gzip",
			strings.Join(codings, ", ")))
	}
}

// readAtMost reads r to its end unless it holds more than limit bytes, in which case it
// returns nil and no error.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	if r == nil {
		return []byte{}, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read body: %w", err)
	case int64(len(b)) > limit:
		return nil, nil
	}
	return b, nil
}

func gunzip(raw []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, badGzip(err)
	}
	defer zr.Close()
	decoded, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, badGzip(err)
	}
	if int64(len(decoded)) > limit {
		return nil, tooLarge("the body after gzip decoding", limit)
	}
	return decoded, nil
}

func tooLarge(what string, limit int64) *Error {
	return newError(TooLarge, fmt.Sprintf("%s is over the limit of %d bytes", what, limit))
}

func badGzip(err error) *Error {
	return newError(Malformed, "the body is not a valid gzip stream", FieldError{
		Rule: RuleGzip,
		Detail: fmt.Sprintf("the gzip stream is damaged, cut short or followed by other data: %v",
			err),
	})
}
