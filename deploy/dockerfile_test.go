package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	name string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile reads the instructions of a Dockerfile. It knows comments and line
// continuations, which is all this Dockerfile uses; heredocs are not supported.
func parseDockerfile(data []byte) []instruction {
	var out []instruction
	var cur strings.Builder
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		name, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{name: strings.ToUpper(name), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// stages splits instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.name == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

// TestDockerfile checks the image's build against what the manifests and the issue ask for:
// a static build, a minimal final stage, a numeric non-root user that the Deployment's
// runAsUser agrees with, the two ports, and the binary as the entrypoint.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	st := stages(parseDockerfile(readFile(t, "Dockerfile")))
	if len(st) != 2 {
		t.Fatalf("stages: got %d, want 2 (build, run)", len(st))
	}
	build, final := st[0], st[1]

	if got := build[0].args; !strings.HasPrefix(got, "golang:1.26 ") {
		t.Errorf("build stage: FROM %s, want golang:1.26", got)
	}
	var buildCmd string
	for _, in := range build {
		if in.name == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/gateway"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("build stage: go build command %q lacks %s", buildCmd, want)
		}
	}

	base := final[0].args
	if !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.HasSuffix(base, ":nonroot") {
		t.Errorf("final stage: FROM %s, want distroless static, tag nonroot", base)
	}
	got := map[string][]string{}
	for _, in := range final[1:] {
		got[in.name] = append(got[in.name], in.args)
	}
	checkFinalStage(t, got)
}

func checkFinalStage(t *testing.T, got map[string][]string) {
	t.Helper()
	if len(got["RUN"]) > 0 {
		t.Errorf("final stage: RUN %v; the run stage has no shell to run it", got["RUN"])
	}

	// USER must be numeric and match the Deployment's runAsUser.
	d, c := gateway(t, render(t, "base"))
	uid, _, _ := strings.Cut(lastOf(got["USER"]), ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	podUID := d.Spec.Template.Spec.SecurityContext.RunAsUser
	switch {
	case err != nil || n == 0:
		t.Errorf("USER %q: want a numeric non-root id", lastOf(got["USER"]))
	case podUID == nil || *podUID != n:
		t.Errorf("USER %d: the Deployment's pod securityContext names another runAsUser", n)
	}

	var want []string
	for _, p := range c.Ports {
		want = append(want, strconv.Itoa(int(p.ContainerPort)))
	}
	if exposed := strings.Fields(strings.Join(got["EXPOSE"], " ")); !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %v, want the container ports %v", exposed, want)
	}

	var entry []string
	if err := json.Unmarshal([]byte(lastOf(got["ENTRYPOINT"])), &entry); err != nil ||
		len(entry) != 1 {
		t.Fatalf("ENTRYPOINT %q: want the exec form naming only the binary", got["ENTRYPOINT"])
	}
	var copied bool
	for _, cp := range got["COPY"] {
		copied = copied || strings.HasSuffix(cp, " "+entry[0])
	}
	if !copied {
		t.Errorf("ENTRYPOINT %s: no COPY puts the binary there", entry[0])
	}
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestBuildContextHoldsTheSources checks .dockerignore, with the matcher docker itself uses,
// against what `go build ./cmd/gateway` reads: every Go and embedded file of the module's
// packages it depends on, and go.mod and go.sum, must reach the build context.
func TestBuildContextHoldsTheSources(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	matcher, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}

	needed := append(buildInputs(t, root), "go.mod", "go.sum")
	for _, path := range needed {
		ignored, err := matcher.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatal(err)
		}
		if ignored {
			t.Errorf("%s: the build needs it, but .dockerignore leaves it out", path)
		}
	}
	// And the context stays small: history and test binaries stay out.
	for _, path := range []string{".git/config", "validation.test", "deploy/Dockerfile"} {
		if ignored, _ := matcher.MatchesOrParentMatches(path); !ignored {
			t.Errorf("%s: want it left out of the build context", path)
		}
	}
}

// buildInputs lists, relative to root, the source and embedded files of every package of
// this module that cmd/gateway is built from.
func buildInputs(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}`+
			`{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}`+
			`{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/gateway")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var files []string
	for _, line := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, line)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("go list: %s is outside the module", line)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	if !slices.Contains(files, "openapi.yaml") || !slices.Contains(files, "cmd/gateway/main.go") {
		t.Fatalf("go list: got %d files without openapi.yaml and cmd/gateway/main.go", len(files))
	}
	return files
}
