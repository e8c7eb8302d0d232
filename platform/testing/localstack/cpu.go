package localstack

import "time"

// ServerCPU is the CPU time, user and system, that the stack's server
// processes have used since they started. The servers are child processes,
// so the Go process's own CPU time leaves them out; two readings taken
// around a run give what they spent on it.
type ServerCPU struct {
	// Redis is the redis-server's CPU time, plus every Redis Cluster
	// node's when the stack has a cluster.
	Redis time.Duration
	// Postgres is the postmaster's CPU time and that of every process it
	// forked: connection backends, the checkpointer, the WAL writer,
	// autovacuum workers.
	Postgres time.Duration
}

// Sub is the CPU time used between the reading before and c.
func (c ServerCPU) Sub(before ServerCPU) ServerCPU {
	return ServerCPU{Redis: c.Redis - before.Redis, Postgres: c.Postgres - before.Postgres}
}
