package gateway_test

import (
	"testing"

	"github.com/flashsale/flashsale/gateway/internal/servicetest"
	"github.com/flashsale/flashsale/platform/localstack"
)

// stack is the real Redis, Postgres and Kafka-protocol broker the tests
// and the downstream services they start run against.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, servicetest.StackConfig(), func(s *localstack.Stack) { stack = s })
}
