package localstack

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 a second in what it reports to user space on
// every architecture Go runs on. The value a C program would ask for is
// sysconf(_SC_CLK_TCK), which golang.org/x/sys/unix does not offer on
// Linux; prometheus/procfs, which parses the file here, assumes 100 too.
const clockTicks = 100

// ServerCPU reads from /proc the CPU time the stack's servers have used so
// far. Each server counts with every process below it, and with the ones
// below it that have ended: when a process reaps an ended child the kernel
// adds the child's CPU time to the parent's cutime and cstime, which are
// counted too. Postgres's postmaster reaps every backend it forked, so the
// CPU of a closed connection's backend is not lost. A reading is not
// atomic: a backend that ends while /proc is being read may be missing
// from that one reading.
func (s *Stack) ServerCPU() (ServerCPU, error) {
	t, err := readProcTable()
	if err != nil {
		return ServerCPU{}, err
	}
	var cpu ServerCPU
	for _, c := range append([]*child{s.redis}, s.clusterNodes...) {
		d, err := t.childCPU(c)
		if err != nil {
			return ServerCPU{}, err
		}
		cpu.Redis += d
	}
	if cpu.Postgres, err = t.childCPU(s.postgresChild()); err != nil {
		return ServerCPU{}, err
	}
	return cpu, nil
}

// procTable is one pass over /proc: every process's CPU clock ticks,
// its own and its reaped children's, and every process's children.
type procTable struct {
	ticks    map[int]uint64
	children map[int][]int
}

func readProcTable() (procTable, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return procTable{}, fmt.Errorf("localstack: list processes: %w", err)
	}
	t := procTable{ticks: make(map[int]uint64, len(procs)), children: map[int][]int{}}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			// The process ended after the listing. Its CPU time moves to
			// its parent's count once the parent reaps it.
			continue
		}
		t.ticks[p.PID] = uint64(st.UTime) + uint64(st.STime) + uint64(st.CUTime) + uint64(st.CSTime)
		t.children[st.PPID] = append(t.children[st.PPID], p.PID)
	}
	return t, nil
}

// childCPU is the CPU time of a running server and all its descendants.
func (t procTable) childCPU(c *child) (time.Duration, error) {
	select {
	case <-c.exited:
		return 0, fmt.Errorf("localstack: CPU time of %s: the server has exited", c.name)
	default:
	}
	pid := c.cmd.Process.Pid
	if _, ok := t.ticks[pid]; !ok {
		return 0, fmt.Errorf("localstack: CPU time of %s: process %d not in /proc", c.name, pid)
	}
	return t.treeCPU(pid), nil
}

// treeCPU is the CPU time of process pid and all its descendants.
func (t procTable) treeCPU(pid int) time.Duration {
	var ticks uint64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], t.children[p]...)
		ticks += t.ticks[p]
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
