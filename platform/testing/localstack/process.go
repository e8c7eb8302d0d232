package localstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// procRunner starts child processes from one goroutine locked to its OS
// thread. Linux delivers the parent-death signal when the thread that
// forked a child exits, not the process, so that thread must outlive the
// children: it stays until close.
type procRunner struct {
	reqs chan startReq
	done chan struct{}
}

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

func newProcRunner() *procRunner {
	p := &procRunner{reqs: make(chan startReq), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked: when this goroutine returns the
		// runtime retires the thread, after every child has been stopped.
		for {
			select {
			case r := <-p.reqs:
				r.err <- r.cmd.Start()
			case <-p.done:
				return
			}
		}
	}()
	return p
}

func (p *procRunner) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// owner alone, which stops the children in order (the services
	// before the servers they use) instead of all at once.
	cmd.SysProcAttr.Setpgid = true
	errc := make(chan error, 1)
	p.reqs <- startReq{cmd: cmd, err: errc}
	return <-errc
}

func (p *procRunner) close() { close(p.done) }

// child is a started server process whose output goes to a log file.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func (p *procRunner) spawn(name, logPath string, cmd *exec.Cmd) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("localstack: %s log: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := p.start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("localstack: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.exited)
	}()
	return c, nil
}

// stop signals the child and waits for it, killing it after a grace period.
func (c *child) stop(sig syscall.Signal) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("localstack: %s did not stop in 10s and was killed", c.name)
	}
}

// failed reports a child that exited early, with the tail of its log.
func (c *child) failed() error {
	select {
	case <-c.exited:
		b, _ := os.ReadFile(c.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		return fmt.Errorf("localstack: %s exited (%v); last log lines:\n%s", c.name, c.err, strings.Join(lines, "\n"))
	default:
		return nil
	}
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the child binds it; callers retry on a bind failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lookBin finds a binary in PATH or in the given directories.
func lookBin(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New(name + " not found")
}
