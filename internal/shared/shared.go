// Package shared finds the team's shared inputs (the Graph page and the real-world cases) that
// the tests read from the folder kept beside the repository's checkout.
package shared

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvDir names the variable that points at the shared folder when it is not beside the
// checkout.
const EnvDir = "TUNNELGW_SHARED_DIR"

// marker is a file every copy of the shared folder holds.
var marker = filepath.Join("cases", "update-requests.json")

// Dir returns the shared folder. It looks, in order, at $TUNNELGW_SHARED_DIR, at a `shared`
// folder beside any ancestor of the working directory (the checkout's own parent first), and
// beside the repository this checkout was cloned from when that is a local path, so a clean
// clone made anywhere finds the folder of the checkout it came from.
func Dir() (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		if !holdsMarker(dir) {
			return "", fmt.Errorf("%s=%s does not hold %s", EnvDir, dir, marker)
		}
		return dir, nil
	}

	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the shared folder: %w", err)
	}
	looked := []string{}
	for dir := wd; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "shared")
		if holdsMarker(candidate) {
			return candidate, nil
		}
		looked = append(looked, candidate)
		if filepath.Dir(dir) == dir {
			break
		}
	}

	if origin := localOrigin(wd); origin != "" {
		candidate := filepath.Join(filepath.Dir(origin), "shared")
		if holdsMarker(candidate) {
			return candidate, nil
		}
		looked = append(looked, candidate)
	}
	return "", errors.New("the shared folder (../shared beside the checkout) was not found; " +
		"looked in " + strings.Join(looked, ", ") + "; set " + EnvDir + " to point at it")
}

// File returns the path of a file inside the shared folder, such as "cases/update-requests.json".
func File(rel string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(rel)), nil
}

func holdsMarker(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, marker))
	return err == nil && info.Mode().IsRegular()
}

// localOrigin is the top of the repository this checkout was cloned from, when the clone's
// origin is a path on this machine; otherwise empty.
func localOrigin(wd string) string {
	out, err := exec.Command("git", "-C", wd, "remote", "get-url", "origin").Output()
	if err != nil {
		return ""
	}
	url := strings.TrimSpace(string(out))
	url = strings.TrimPrefix(url, "file://")
	if !filepath.IsAbs(url) {
		return ""
	}
	return filepath.Clean(strings.TrimSuffix(url, "/.git"))
}
