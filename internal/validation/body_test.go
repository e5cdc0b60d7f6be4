package validation

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestReadBody(t *testing.T) {
	t.Parallel()
	const limit = 1024
	small := []byte(`{"displayName":"x"}`)
	atLimit := []byte(`{"displayName":"` + strings.Repeat("a", limit-18) + `"}`)
	overLimit := append(bytes.Clone(atLimit[:len(atLimit)-2]), 'a', '"', '}')
	bomb := gzipped(t, bytes.Repeat([]byte(" "), 4<<20)) // 4 MiB of spaces, ~4 KiB packed
	json := http.Header{"Content-Type": {"application/json"}}
	with := func(pairs ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(pairs); i += 2 {
			h.Add(pairs[i], pairs[i+1])
		}
		return h
	}
	tests := []struct {
		name     string
		header   http.Header
		body     io.Reader
		wantKind Kind
		want     []byte
	}{
		{"json", json, bytes.NewReader(small), 0, small},
		{"charset utf-8", with("Content-Type", "application/json; charset=UTF-8"),
			bytes.NewReader(small), 0, small},
		{"media type in upper case", with("Content-Type", "Application/JSON"),
			bytes.NewReader(small), 0, small},
		{"no content type", with(), bytes.NewReader(small), UnsupportedMediaType, nil},
		{"form", with("Content-Type", "application/x-www-form-urlencoded"),
			strings.NewReader("displayName=x"), UnsupportedMediaType, nil},
		{"text", with("Content-Type", "text/plain"), bytes.NewReader(small),
			UnsupportedMediaType, nil},
		{"json suffix type", with("Content-Type", "application/merge-patch+json"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"latin-1", with("Content-Type", "application/json; charset=iso-8859-1"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"other parameter", with("Content-Type", "application/json; odata=verbose"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"odata format parameters", with("Content-Type",
			"application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false"),
			bytes.NewReader(small), 0, small},
		{"odata parameter with an unknown value", with("Content-Type",
			"application/json;odata.metadata=verbose"), bytes.NewReader(small),
			UnsupportedMediaType, nil},
		{"unparsable type", with("Content-Type", "application/json; charset"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"two content types", with("Content-Type", "application/json",
			"Content-Type", "text/plain"), bytes.NewReader(small), UnsupportedMediaType, nil},
		{"identity", with("Content-Type", "application/json", "Content-Encoding", "identity"),
			bytes.NewReader(small), 0, small},
		{"gzip", with("Content-Type", "application/json", "Content-Encoding", "gzip"),
			bytes.NewReader(gzipped(t, small)), 0, small},
		{"gzip upper case", with("Content-Type", "application/json", "Content-Encoding", "GZIP"),
			bytes.NewReader(gzipped(t, small)), 0, small},
		{"x-gzip", with("Content-Type", "application/json", "Content-Encoding", "x-gzip"),
			bytes.NewReader(gzipped(t, small)), 0, small},
		{"gzip at limit after decoding", with("Content-Type", "application/json",
			"Content-Encoding", "gzip"), bytes.NewReader(gzipped(t, atLimit)), 0, atLimit},
		{"br", with("Content-Type", "application/json", "Content-Encoding", "br"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"deflate", with("Content-Type", "application/json", "Content-Encoding", "deflate"),
			bytes.NewReader(small), UnsupportedMediaType, nil},
		{"gzip twice", with("Content-Type", "application/json", "Content-Encoding", "gzip, gzip"),
			bytes.NewReader(gzipped(t, gzipped(t, small))), UnsupportedMediaType, nil},
		{"gzip header claimed, plain body", with("Content-Type", "application/json",
			"Content-Encoding", "gzip"), bytes.NewReader(small), Malformed, nil},
		{"truncated gzip", with("Content-Type", "application/json", "Content-Encoding", "gzip"),
			bytes.NewReader(gzipped(t, small)[:20]), Malformed, nil},
		{"empty gzip body", with("Content-Type", "application/json", "Content-Encoding", "gzip"),
			bytes.NewReader(nil), 0, []byte{}},
		{"at limit", json, bytes.NewReader(atLimit), 0, atLimit},
		{"over limit", json, bytes.NewReader(overLimit), TooLarge, nil},
		{"announced over limit", with("Content-Type", "application/json",
			"Content-Length", "1025"), bytes.NewReader(small), TooLarge, nil},
		{"gzip over limit after decoding", with("Content-Type", "application/json",
			"Content-Encoding", "gzip"), bytes.NewReader(gzipped(t, overLimit)), TooLarge, nil},
		{"gzip bomb", with("Content-Type", "application/json", "Content-Encoding", "gzip"),
			bytes.NewReader(bomb), TooLarge, nil},
		{"no body", json, nil, 0, []byte{}},
		{"max bytes reader", json, http.MaxBytesReader(httptest.NewRecorder(),
			io.NopCloser(bytes.NewReader(atLimit)), 100), TooLarge, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadBody(tt.header, tt.body, limit)
			if gotKind := kindOf(err); gotKind != tt.wantKind {
				t.Fatalf("kind = %v (%v), want %v", gotKind, err, tt.wantKind)
			}
			if tt.wantKind == 0 && !bytes.Equal(got, tt.want) {
				t.Errorf("body = %.60q, want %.60q", got, tt.want)
			}
		})
	}
}

func TestReadBodyDefaultLimit(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("a"), int(DefaultLimit)+1)
	_, err := ReadBody(http.Header{"Content-Type": {"application/json"}},
		bytes.NewReader(body), 0)
	if got, want := kindOf(err), TooLarge; got != want {
		t.Errorf("kind = %v, want %v", got, want)
	}
	got, err := ReadBody(http.Header{"Content-Type": {"application/json"}},
		bytes.NewReader(body[1:]), 0)
	if err != nil || len(got) != int(DefaultLimit) {
		t.Errorf("at the default limit: %d bytes, %v; want %d bytes, no error",
			len(got), err, DefaultLimit)
	}
}

func TestReadBodyReadError(t *testing.T) {
	t.Parallel()
	_, err := ReadBody(http.Header{"Content-Type": {"application/json"}}, failingReader{}, 0)
	if err == nil || kindOf(err) != 0 || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("err = %v, want the reader's error wrapped, not a validation error", err)
	}
}

// TestReadBodyOverHTTP sends bodies through a real server, as the gateway receives them.
func TestReadBodyOverHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := ReadBody(r.Header, r.Body, 1024)
		switch kindOf(err) {
		case 0:
			if err != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		case TooLarge:
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case UnsupportedMediaType:
			w.WriteHeader(http.StatusUnsupportedMediaType)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, encoding string
		body           []byte
		want           int
	}{
		{"plain", "", []byte(`{"displayName":"x"}`), http.StatusOK},
		{"gzip", "gzip", gzipped(t, []byte(`{"displayName":"x"}`)), http.StatusOK},
		{"gzip bomb", "gzip", gzipped(t, bytes.Repeat([]byte("{"), 1<<20)),
			http.StatusRequestEntityTooLarge},
		{"large", "", bytes.Repeat([]byte(" "), 100<<10), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodPatch, srv.URL, bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
