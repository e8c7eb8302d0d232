package gateway_test

import (
	"testing"

	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// stack is the real Redis, Postgres and Kafka-protocol broker the tests
// and the downstream services they start run against.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	cfg := servicetest.StackConfig()
	// The per-user limits and accepted keys are also tested on a cluster.
	cfg.RedisCluster = true
	localstack.RunTests(m, cfg, func(s *localstack.Stack) { stack = s })
}
