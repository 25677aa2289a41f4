package testkit

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is a program a test started: its output is kept (and logged
// when the test fails), and it is killed when the test ends.
type Process struct {
	// Name names it in failures.
	Name string
	// Cmd is the running command.
	Cmd *exec.Cmd
	// Output is everything it wrote, stdout and stderr.
	Output *LogBuffer

	lines  chan string
	exited chan struct{}
	err    error
}

// Start runs cmd, named name, collecting its output.
func Start(tb testing.TB, name string, cmd *exec.Cmd) *Process {
	tb.Helper()
	p := &Process{Name: name, Cmd: cmd, Output: &LogBuffer{}, lines: make(chan string, 1024), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			_, _ = p.Output.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.Kill(tb)
		if tb.Failed() {
			tb.Logf("%s said:\n%s", name, p.Output)
		}
	})
	return p
}

// WaitFor returns the first submatch (or the whole match) of the first
// line of output re matches, failing the test when the process exits first
// or prints none within 30 s.
func (p *Process) WaitFor(tb testing.TB, re *regexp.Regexp) string {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				if len(m) > 1 {
					return m[1]
				}
				return m[0]
			}
		case <-p.exited:
			tb.Fatalf("%s exited:\n%s", p.Name, p.Output)
		case <-deadline:
			tb.Fatalf("%s did not print %s:\n%s", p.Name, re, p.Output)
		}
	}
}

// WaitUntil polls cond, every so often, until it holds, failing the test when
// the process exits first or cond does not hold within 30 s; what names
// what it waits for in the failure.
func (p *Process) WaitUntil(tb testing.TB, what string, every time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-p.exited:
			tb.Fatalf("%s exited while the test waited for %s:\n%s", p.Name, what, p.Output)
		case <-deadline:
			tb.Fatalf("%s: no %s within 30s:\n%s", p.Name, what, p.Output)
		case <-time.After(every):
		}
	}
}

// WaitListening waits until 127.0.0.1:port accepts TCP connections, failing
// the test when the process exits first or 30 s pass.
func (p *Process) WaitListening(tb testing.TB, port int) {
	tb.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitUntil(tb, addr+" listening", 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.exited }

// Exit waits up to within for the process to exit and returns what Wait
// returned (nil: status 0).
func (p *Process) Exit(tb testing.TB, within time.Duration) error {
	tb.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		tb.Fatalf("%s still runs after %s", p.Name, within)
		return nil
	}
}

// Kill kills the process, if it still runs, and waits for it.
func (p *Process) Kill(tb testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		tb.Errorf("%s did not exit", p.Name)
	}
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error

	builds sync.Map // package path → *build
)

type build struct {
	once sync.Once
	bin  string
	err  error
}

// ModuleRoot returns the directory of the module's go.mod.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() {
		var out []byte
		out, rootErr = exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		root = strings.TrimSpace(string(out))
	})
	if rootErr != nil {
		tb.Fatalf("go list -m: %v", rootErr)
	}
	return root
}

// Build builds the command of pkg (a path relative to the module's root:
// "." for the server, "./upstream/sandbox/cmd/sandbox" for the sandbox)
// once for the test binary, and returns the binary's path. A package whose
// tests build should run them through Main, which removes the binaries.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := tempDir()
		if err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(dir, filepath.Base(filepath.Clean(pkg)))
		if pkg == "." {
			b.bin = filepath.Join(dir, "imagegraph")
		}
		cmd := exec.Command("go", "build", "-o", b.bin, pkg)
		cmd.Dir = ModuleRoot(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = &buildError{pkg: pkg, out: string(out), err: err}
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.bin
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }
