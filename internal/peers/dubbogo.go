// Package peers builds the test peers that integration tests and bench/
// share, cached in $HOME/.cache/meshgate by version and sources.
package peers

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// DubboGoVersion is the dubbo-go that integration/dubbogo pins.
const DubboGoVersion = "v3.3.2"

// BuildDubboGo builds package pkg of the dubbo-go module in dir
// (integration/dubbogo, its own module so that meshgate's does not import
// dubbo-go) once per version and content of sources (relative to dir). A
// cold build compiles ~1,000 packages; a cached one costs a stat.
func BuildDubboGo(dir, name, pkg string, sources ...string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range sources {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	bin := filepath.Join(home, ".cache", "meshgate", "dubbo-go-"+DubboGoVersion, fmt.Sprintf("%s-%x", name, h.Sum(nil)[:6]))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the dubbo-go %s: %v\n%s", name, err, out)
	}
	fmt.Fprintf(os.Stderr, "built the dubbo-go %s in %v (cached at %s)\n", name, time.Since(start).Round(time.Second), bin)
	return bin, nil
}
