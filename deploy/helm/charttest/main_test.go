package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	repoRoot      = filepath.Join("..", "..", "..")
	chartDir      = filepath.Join("..", "meshgate")
	manifestsFile = filepath.Join("..", "..", "kubernetes", "meshgate.yaml")
	dockerfile    = filepath.Join(repoRoot, "Dockerfile")
	dockerignore  = filepath.Join(repoRoot, ".dockerignore")
)

// stampVersion is what the tests' build stamps, through the Dockerfile's
// own -ldflags.
const stampVersion = "v0.0.0-charttest"

var (
	tmpDir     string
	buildOnce  sync.Once
	binaryPath string
	binaryErr  error
)

func TestMain(m *testing.M) {
	var err error
	tmpDir, err = os.MkdirTemp("", "charttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// meshgate builds the real binary once, from the repository's root, as the
// Dockerfile builds it (CGO_ENABLED=0, -trimpath, its -ldflags with VERSION
// set to stampVersion).
func meshgate(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		df, err := parseDockerfile(dockerfile)
		if err != nil {
			binaryErr = err
			return
		}
		ldflags, err := df.ldflags(map[string]string{"VERSION": stampVersion})
		if err != nil {
			binaryErr = err
			return
		}
		out := filepath.Join(tmpDir, "meshgate")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "github.com/meshgate/meshgate/cmd/meshgate")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build -ldflags %q: %v\n%s", ldflags, err, b)
			return
		}
		binaryPath = out
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// runFlags are the flags `meshgate run -h` lists, each with whether it
// takes a value (bool flags do not).
func runFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(meshgate(t), "run", "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		flags[m[1]] = m[2] != ""
	}
	if len(flags) < 5 || !strings.Contains(string(out), "Usage of run") {
		t.Fatalf("meshgate run -h listed %d flags:\n%s", len(flags), out)
	}
	return flags
}
