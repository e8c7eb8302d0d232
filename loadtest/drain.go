package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
)

// WaitDrained waits until consumer group has committed every message of
// topic, three polls in a row, so that an audit reads settled books.
// Under a marked context (a pressure test's session) it waits for their
// shadow twins: the group <group>.shadow on <topic>.shadow.
func WaitDrained(ctx context.Context, brokers []string, group, topic string, timeout time.Duration) error {
	group, topic = kafka.Group(ctx, group), shadow.Topic(ctx, topic)
	deadline := time.Now().Add(timeout)
	for zeroes := 0; zeroes < 3; {
		lag, err := kafka.Lag(ctx, brokers, group, topic)
		if err == nil && lag == 0 {
			zeroes++
		} else {
			zeroes = 0
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%s not drained by group %s after %s (lag %d)", topic, group, timeout, lag), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
