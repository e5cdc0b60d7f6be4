package app_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"tunnelgateway/internal/graphsim"
	"tunnelgateway/internal/shared"
)

type sharedCase struct {
	Name    string            `json:"name"`
	Why     string            `json:"why"`
	Route   string            `json:"route"`
	Method  string            `json:"method"`
	Site    string            `json:"site"`
	Server  string            `json:"server"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
	Expect  struct {
		Status   json.RawMessage `json:"status"`
		Mentions []string        `json:"mentions"`
	} `json:"expect"`
}

func (c sharedCase) statuses(t *testing.T) []int {
	var one int
	if json.Unmarshal(c.Expect.Status, &one) == nil {
		return []int{one}
	}
	var many []int
	if err := json.Unmarshal(c.Expect.Status, &many); err != nil {
		t.Fatalf("case %s: expect.status is neither a number nor a list", c.Name)
	}
	return many
}

// TestSharedCases sends every case of ../shared/cases/update-requests.json through the gateway
// to the simulator's default seed and checks the status and the fields the answer names.
func TestSharedCases(t *testing.T) {
	casesFile, err := shared.File("cases/update-requests.json")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(casesFile)
	if err != nil {
		t.Fatalf("read the shared cases: %v", err)
	}
	var cases []sharedCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("decode %s: %v", casesFile, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s holds no cases", casesFile)
	}

	s := startStack(t, stackOptions{})
	fill := strings.NewReplacer("{site}", graphsim.DefaultSiteID, "{server}", graphsim.ExampleServerID)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			site, server := fill.Replace(c.Site), fill.Replace(c.Server)
			path := v1Server(site, server)
			if c.Route == "graph" {
				path = graphServer(site, server)
			}
			r := request{method: c.Method, path: path, headers: c.Headers}
			if c.Body != nil {
				r.body = fill.Replace(*c.Body)
			}

			got := s.do(t, r)
			want := c.statuses(t)
			if !containsInt(want, got.status) {
				t.Fatalf("status = %d, want one of %v (%s)\nbody: %s", got.status, want, c.Why, got.body)
			}
			for _, name := range c.Expect.Mentions {
				if !strings.Contains(got.body, name) {
					t.Errorf("answer does not mention %q: %s", name, got.body)
				}
			}
		})
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
