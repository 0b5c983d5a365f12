package charttest

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No container engine runs in CI: the Dockerfile is checked by reading it,
// and the binary it would build is built here with its own flags.

type dockerInstr struct{ cmd, args string }

type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

type parsedDockerfile struct {
	globalArgs map[string]string // ARGs before the first FROM, with their defaults
	stages     []dockerStage
}

func parseDockerfile(path string) (*parsedDockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	df := &parsedDockerfile{globalArgs: map[string]string{}}
	var logical []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: ends in a continued line", path)
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			var st dockerStage
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					st.name = fields[i+1]
					i++
				default:
					st.from = fields[i]
				}
			}
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("%s: %s before the first FROM", path, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			df.globalArgs[k] = v
		default:
			st := &df.stages[len(df.stages)-1]
			st.instrs = append(st.instrs, in)
		}
	}
	return df, nil
}

func (df *parsedDockerfile) final() dockerStage { return df.stages[len(df.stages)-1] }

func (st dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range st.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

var (
	argRef      = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	ldflagsExpr = regexp.MustCompile(`-ldflags[ =]"([^"]*)"`)
)

func expandArgs(s string, vars map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

// buildRun is the build stage's RUN that builds the binary.
func (df *parsedDockerfile) buildRun() (string, error) {
	for _, st := range df.stages[:len(df.stages)-1] {
		for _, r := range st.all("RUN") {
			if strings.Contains(r, "go build") {
				return r, nil
			}
		}
	}
	return "", fmt.Errorf("no build stage RUNs go build")
}

// ldflags are the build's -ldflags with vars expanded.
func (df *parsedDockerfile) ldflags(vars map[string]string) (string, error) {
	r, err := df.buildRun()
	if err != nil {
		return "", err
	}
	m := ldflagsExpr.FindStringSubmatch(r)
	if m == nil {
		return "", fmt.Errorf("the go build has no -ldflags \"...\": %s", r)
	}
	return expandArgs(m[1], vars), nil
}

func execForm(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("not the exec (JSON array) form: %s", s)
	}
	return v, nil
}

func TestDockerfile(t *testing.T) {
	df, err := parseDockerfile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(df.stages))
	}
	final := df.final()
	checks := []struct {
		name  string
		check func() error
	}{
		{"final stage is scratch or distroless static", func() error {
			base := expandArgs(final.from, df.globalArgs)
			if base == "scratch" || regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$`).MatchString(base) {
				return nil
			}
			return fmt.Errorf("final stage FROM %s (%s)", final.from, base)
		}},
		{"final stage holds only the binary", func() error {
			if r := final.all("RUN"); len(r) > 0 {
				return fmt.Errorf("RUN in the final stage (it has no shell): %q", r)
			}
			copies := final.all("COPY")
			if len(copies) != 1 || !strings.HasPrefix(copies[0], "--from=") || !strings.HasSuffix(copies[0], " /meshgate") {
				return fmt.Errorf("want one COPY --from=<build stage> ... /meshgate, got %q", copies)
			}
			from := strings.Fields(strings.TrimPrefix(copies[0], "--from="))[0]
			for _, st := range df.stages[:len(df.stages)-1] {
				if st.name == from {
					return nil
				}
			}
			return fmt.Errorf("COPY --from=%s names no earlier stage", from)
		}},
		{"numeric non-root USER", func() error {
			users := final.all("USER")
			if len(users) == 0 {
				return fmt.Errorf("no USER in the final stage")
			}
			u := users[len(users)-1]
			if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(u) {
				return fmt.Errorf("USER %s: want a numeric uid (and gid) other than 0", u)
			}
			return nil
		}},
		{"ENTRYPOINT [\"/meshgate\"]", func() error {
			eps := final.all("ENTRYPOINT")
			if len(eps) != 1 {
				return fmt.Errorf("want one ENTRYPOINT, got %q", eps)
			}
			v, err := execForm(eps[0])
			if err != nil {
				return err
			}
			if len(v) != 1 || v[0] != "/meshgate" {
				return fmt.Errorf("ENTRYPOINT %q", v)
			}
			return nil
		}},
		{"CMD [\"run\", ...]", func() error {
			cmds := final.all("CMD")
			if len(cmds) != 1 {
				return fmt.Errorf("want one CMD, got %q", cmds)
			}
			v, err := execForm(cmds[0])
			if err != nil {
				return err
			}
			if len(v) == 0 || v[0] != "run" {
				return fmt.Errorf("CMD %q: want the run command and its flags", v)
			}
			return nil
		}},
		{"static, trimmed, stamped build of ./cmd/meshgate", func() error {
			r, err := df.buildRun()
			if err != nil {
				return err
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/meshgate",
				"-X github.com/meshgate/meshgate/cmd/meshgate/cli.version=${VERSION}"} {
				if !strings.Contains(r, want) {
					return fmt.Errorf("the build misses %q: %s", want, r)
				}
			}
			return nil
		}},
		{".dockerignore keeps the module and drops .git", func() error {
			data, err := os.ReadFile(dockerignore)
			if err != nil {
				return err
			}
			var patterns []string
			for _, l := range strings.Split(string(data), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					patterns = append(patterns, l)
				}
			}
			ignored := func(p string) bool {
				for _, pat := range patterns {
					first := strings.SplitN(p, "/", 2)[0]
					if ok, _ := filepath.Match(pat, p); ok {
						return true
					}
					if ok, _ := filepath.Match(pat, first); ok {
						return true
					}
				}
				return false
			}
			if !ignored(".git") {
				return fmt.Errorf(".git is sent to the builder")
			}
			for _, p := range []string{"go.mod", "go.sum", "cmd/meshgate/main.go", "cmd/meshgate/cli/demo.yaml", "server/server.go"} {
				if ignored(p) {
					return fmt.Errorf("%s is ignored, the build needs it", p)
				}
			}
			return nil
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDockerfile_BinaryAsBuilt builds the binary with the Dockerfile's own
// flags: the version stamp reaches `meshgate version`, and the binary is
// static (no ELF interpreter), so it runs on scratch or distroless static.
func TestDockerfile_BinaryAsBuilt(t *testing.T) {
	bin := meshgate(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("meshgate version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "meshgate "+stampVersion+" ") && strings.TrimSpace(string(out)) != "meshgate "+stampVersion {
		t.Errorf("meshgate version = %q, want the Dockerfile's stamp %q", out, stampVersion)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has an ELF interpreter: it is not static (CGO_ENABLED=0)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v", libs)
	}
}

// TestDockerfile_Image builds the image where a container engine answers
// (docker or podman), runs its entrypoint (`version`, and `run -h` for the
// flags the chart passes) and checks it runs as a non-root user. Where none
// answers (these CI machines have the docker client only) it skips, saying
// so: the Dockerfile is then checked by TestDockerfile and the binary by
// TestDockerfile_BinaryAsBuilt.
func TestDockerfile_Image(t *testing.T) {
	builder := ""
	for _, b := range []string{"docker", "podman"} {
		if _, err := exec.LookPath(b); err == nil && exec.Command(b, "info").Run() == nil {
			builder = b
			break
		}
	}
	if builder == "" {
		t.Skip("no container engine answers `docker info` or `podman info` here: the image is not built; the Dockerfile is checked statically (TestDockerfile, TestDockerfile_BinaryAsBuilt)")
	}
	image := "meshgate-charttest:" + stampVersion
	build := exec.Command(builder, "build", "--build-arg", "VERSION="+stampVersion, "-t", image, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s build: %v\n%s", builder, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(builder, "rmi", "-f", image).Run() })
	run := func(args ...string) string {
		out, err := exec.Command(builder, append([]string{"run", "--rm", "--read-only", image}, args...)...).CombinedOutput()
		if err != nil && !strings.Contains(strings.Join(args, " "), "-h") {
			t.Fatalf("%s run %s %v: %v\n%s", builder, image, args, err, out)
		}
		return string(out)
	}
	if out := run("version"); !strings.HasPrefix(out, "meshgate "+stampVersion) {
		t.Errorf("the image's `version` = %q, want the stamp %q", out, stampVersion)
	}
	if out := run("run", "-h"); !strings.Contains(out, "-readiness-address") {
		t.Errorf("the image's `run -h` does not list the flags the chart passes:\n%s", out)
	}
	inspect, err := exec.Command(builder, "image", "inspect", "--format", "{{.Config.User}}", image).Output()
	if err != nil {
		t.Fatal(err)
	}
	if u := strings.TrimSpace(string(inspect)); u == "" || u == "0" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0:") {
		t.Errorf("the image runs as %q, want a non-root user", u)
	}
}
