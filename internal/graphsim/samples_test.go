package graphsim

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunnelgateway/internal/shared"
)

// errorShape is what a Graph error body looks like once ids, dates and wording that depends on
// the endpoint are left out: what a client can rely on when it reads one.
type errorShape struct {
	Status     int
	RetryAfter bool // a Retry-After header is present
	Code       string
	InnerError string // the innerError field names, sorted and joined
	// PlainMessage is the message when it is not Intune's JSON document.
	PlainMessage string
	// The rest describe Intune's JSON document when the message is one.
	IntuneForm          bool
	CRLF                bool   // the document is indented with CRLF line ends
	DocumentFields      string // its field names, sorted and joined
	Version             float64
	RetryAfterNull      bool
	MessageLayout       bool // Message reads "… - Operation ID …: id - Activity ID: id - Url: …"
	ActivityIsRequestID bool // the Activity ID is innerError's request-id
	APIErrorPhrase      string
	PhraseEndsMessage   bool // Message ends with " - CustomApiErrorPhrase: " and the phrase
	SourceService       bool // ErrorSourceService is not empty
}

// intuneMessageLayout matches the Message of Intune's document; the trailing phrase is optional.
var intuneMessageLayout = regexp.MustCompile(`^.+ - Operation ID \(for customer support\): ` +
	`[0-9a-f-]{36} - Activity ID: ([0-9a-f-]{36}) - Url: https://fef\.\S+` +
	`(?: - CustomApiErrorPhrase: (\S+))?$`)

// shapeOf reads the shape of an error body answered with status.
func shapeOf(t *testing.T, status int, retryAfter bool, body []byte) errorShape {
	t.Helper()
	var doc struct {
		Error struct {
			Code       string            `json:"code"`
			Message    string            `json:"message"`
			InnerError map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not a Graph error body: %v: %s", err, body)
	}
	e := doc.Error
	shape := errorShape{Status: status, RetryAfter: retryAfter, Code: e.Code,
		InnerError: strings.Join(slices.Sorted(maps.Keys(e.InnerError)), ",")}

	var intune map[string]any
	if json.Unmarshal([]byte(e.Message), &intune) != nil {
		shape.PlainMessage = e.Message
		return shape
	}
	shape.IntuneForm = true
	shape.CRLF = strings.Contains(e.Message, "\r\n") && !strings.Contains(
		strings.ReplaceAll(e.Message, "\r\n", ""), "\n")
	shape.DocumentFields = strings.Join(slices.Sorted(maps.Keys(intune)), ",")
	shape.Version, _ = intune["_version"].(float64)
	shape.RetryAfterNull = intune["RetryAfter"] == nil
	shape.APIErrorPhrase, _ = intune["CustomApiErrorPhrase"].(string)
	source, _ := intune["ErrorSourceService"].(string)
	shape.SourceService = source != ""
	message, _ := intune["Message"].(string)
	if m := intuneMessageLayout.FindStringSubmatch(message); m != nil {
		shape.MessageLayout = true
		shape.ActivityIsRequestID = m[1] == e.InnerError["request-id"]
		shape.PhraseEndsMessage = m[2] != "" && m[2] == shape.APIErrorPhrase
	}
	return shape
}

// sampleCase is how to make the simulator answer one graph-errors sample.
type sampleCase struct {
	name   string // the sample's file name, whose second part is the status
	opts   Options
	method string
	server string // the server id in the path
	body   string // empty: no body
	// firstWrite sends one successful PATCH before the request, to spend the write budget
	// of the 429 cases or the scripted "ok" before the fault.
	firstWrite bool
	retryAfter bool // the answer carries Retry-After
}

// TestGraphErrorSamples makes the simulator answer each shape in the shared graph-errors folder
// and compares the shapes. The samples carry no headers, so whether Retry-After comes with
// them is stated per case: Graph's throttling guidance sends it with 429, and the Intune 429
// sample is named for its absence.
func TestGraphErrorSamples(t *testing.T) {
	t.Parallel()
	dir, err := shared.File("cases/graph-errors")
	if err != nil {
		t.Fatal(err)
	}
	tests := []sampleCase{
		{name: "error-400-graph-invalidrequest-datetimeoffset-zoneless.json",
			method: http.MethodPatch, server: ExampleServerID,
			body: `{"lastCheckinDateTime":"2024-01-19T13:38:22.169688"}`},
		{name: "error-400-modelvalidationfailure-null-displayname.json",
			method: http.MethodPatch, server: ExampleServerID, body: `{"displayName":null}`},
		{name: "error-404-intune-resourcenotfound-jsoninmessage.json",
			opts:   Options{IntuneErrors: true},
			method: http.MethodGet, server: "00000000-0000-0000-0000-00000000f404"},
		{name: "error-429-graph-toomanyrequests-plain.json",
			opts:   Options{Limits: Limits{AppWrites: 1, Window: time.Minute}},
			method: http.MethodPatch, server: ExampleServerID, body: `{"displayName":"second"}`,
			firstWrite: true, retryAfter: true},
		{name: "error-429-intune-toomanyrequests-jsoninmessage-no-retry-after.json",
			opts: Options{Limits: Limits{AppWrites: 1, Window: time.Minute},
				IntuneErrors: true, OmitRetryAfter: true},
			method: http.MethodPatch, server: ExampleServerID, body: `{"displayName":"second"}`,
			firstWrite: true},
		{name: "error-503-intune-cancelledonservicetimeout.json",
			opts: Options{IntuneErrors: true,
				Faults: Faults{Sequence: []string{"ok", "503:CancelledOnServiceTimeout"}}},
			method: http.MethodPatch, server: ExampleServerID, body: `{"displayName":"second"}`,
			firstWrite: true},
	}

	// A sample added to the folder without a case here would otherwise go unnoticed.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if !slices.ContainsFunc(tests, func(c sampleCase) bool { return c.name == entry.Name() }) {
			t.Errorf("sample %s: no case produces it", entry.Name())
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sample, err := os.ReadFile(filepath.Join(dir, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			status, err := strconv.Atoi(strings.Split(tt.name, "-")[1])
			if err != nil {
				t.Fatalf("file name %s: no status after error-", tt.name)
			}
			want := shapeOf(t, status, tt.retryAfter, sample)

			// Graph echoes client-request-id only when the client sent one, so send one
			// exactly when the sample shows it.
			headers := map[string]string{}
			if strings.Contains(want.InnerError, "client-request-id") {
				headers["client-request-id"] = "c0ffee00-0000-4000-8000-0000000000e4"
			}
			sim := startSim(t, tt.opts)
			tok := graphToken(t, sim, DefaultClientID, DefaultClientSecret)
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			if tt.firstWrite {
				resp, answer := graphRequest(t, sim, http.MethodPatch, serverPath(DefaultSiteID,
					ExampleServerID), tok, []byte(`{"displayName":"first"}`), nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("first write: got %d, want 200: %s", resp.StatusCode, answer)
				}
			}
			resp, answer := graphRequest(t, sim, tt.method, serverPath(DefaultSiteID, tt.server),
				tok, body, headers)
			got := shapeOf(t, resp.StatusCode, resp.Header.Get("Retry-After") != "", answer)
			if got != want {
				t.Errorf("shape:\n got %+v\nwant %+v\nbody %s", got, want, answer)
			}
		})
	}
}
