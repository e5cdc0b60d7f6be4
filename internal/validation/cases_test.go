package validation

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"tunnelgateway/internal/shared"
)

type requestCase struct {
	Name    string            `json:"name"`
	Route   string            `json:"route"`
	Method  string            `json:"method"`
	Server  string            `json:"server"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
	Expect  struct {
		Status   json.RawMessage `json:"status"`
		Mentions []string        `json:"mentions"`
	} `json:"expect"`
}

// statuses reads expect.status, a number or a list of numbers.
func (c requestCase) statuses(t *testing.T) []int {
	var one int
	if err := json.Unmarshal(c.Expect.Status, &one); err == nil {
		return []int{one}
	}
	var many []int
	if err := json.Unmarshal(c.Expect.Status, &many); err != nil {
		t.Fatalf("case %s: expect.status %s: %v", c.Name, c.Expect.Status, err)
	}
	return many
}

// statusOf is the status the gateway gives what this package decided; 200 stands for "passed
// validation" (Graph answers the rest).
func statusOf(err error) int {
	switch kindOf(err) {
	case 0:
		return http.StatusOK
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	default:
		return http.StatusBadRequest
	}
}

// TestSharedCases runs every case of update-requests.json that this package decides (the body,
// its headers and the path ids) and checks the status and the fields named. The cases that
// depend on Graph (an unknown server) are left to the gateway's HTTP tests.
func TestSharedCases(t *testing.T) {
	t.Parallel()
	casesFile, err := shared.File("cases/update-requests.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(casesFile)
	if err != nil {
		t.Fatalf("read the shared cases: %v", err)
	}
	var cases []requestCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("parse %s: %v", casesFile, err)
	}
	v := testValidator(t)
	ran := 0
	for _, c := range cases {
		server := strings.ReplaceAll(c.Server, "{server}", testServer)
		if c.Method != http.MethodPatch || c.Body == nil {
			continue
		}
		want := c.statuses(t)
		decidedHere := func(s int) bool { return s == 200 || s == 400 || s == 413 || s == 415 }
		if ValidID(server) && !slices.ContainsFunc(want, decidedHere) {
			continue // decided by Graph, not by validation
		}
		ran++
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			header := http.Header{}
			for k, val := range c.Headers {
				header.Set(k, val)
			}
			body := strings.ReplaceAll(*c.Body, "{server}", testServer)
			err := validateRequest(v, header, []byte(body), server)
			if got := statusOf(err); !slices.Contains(want, got) {
				t.Fatalf("status = %d (%v), want one of %v", got, err, want)
			}
			for _, name := range c.Expect.Mentions {
				names := func(p string) bool {
					return strings.HasPrefix(p, "/"+escapePointer(name)+" ")
				}
				if !slices.ContainsFunc(problems(err), names) {
					t.Errorf("the answer does not name %s: %v", name, err)
				}
			}
		})
	}
	if ran < 30 {
		t.Errorf("ran %d shared cases, want at least 30", ran)
	}
}

// validateRequest runs the phases this package owns, in the gateway's order.
func validateRequest(v *Validator, h http.Header, body []byte, serverID string) error {
	if !ValidID(serverID) {
		return newError(Invalid, "the server id is not a GUID")
	}
	raw, err := ReadBody(h, bytes.NewReader(body), DefaultLimit)
	if err != nil {
		return err
	}
	_, err = v.Update(raw, serverID)
	return err
}
